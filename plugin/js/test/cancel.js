// Synchronous waits end when cancelled from another thread (what a
// browser's "stop script" does), with a PluginError the script can catch;
// after plugin.resetCancel() everything works again.
shell.load("harness.js");

var R = plugin.results;
var m = launch();

test("a synchronous call", function() {
  shell.cancelWaitsAfter(100);
  var t0 = shell.now();
  throws(function() { m.sleep(1500); },
         pluginError("srpc", R.srpc.CANCELLED));
  check(shell.now() - t0 < 1000, "promptly: " + (shell.now() - t0) + " ms");
  plugin.resetCancel();
  eq(m.add(2, 2), 4, "works after the reset");
});

test("plugin.waitForMessage", function() {
  shell.cancelWaitsAfter(100);
  var t0 = shell.now();
  throws(function() { plugin.waitForMessage(10000); },
         pluginError("plugin", R.plugin.CANCELLED));
  check(shell.now() - t0 < 2500, "promptly");
  plugin.resetCancel();
  eq(plugin.waitForMessage(10), false, "a plain timeout after the reset");
});

test("module.waitForMessage", function() {
  shell.cancelWaitsAfter(100);
  throws(function() { m.waitForMessage(10000); },
         pluginError("plugin", R.plugin.CANCELLED));
  plugin.resetCancel();
  eq(m.waitForMessage(10), null, "null on timeout");
});

test("a cancel from a handler, before the wait", function() {
  plugin.cancelWaits();
  throws(function() { m.add(1, 1); }, pluginError("srpc", R.srpc.CANCELLED));
  plugin.resetCancel();
  eq(m.add(1, 1), 2, "after the reset");
});

runAll();
m.shutdown(1000);
