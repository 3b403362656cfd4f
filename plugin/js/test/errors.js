// Every error class reaches the script as an exception: PluginError with
// the layer ("srpc", "plugin", "object", "system") and its result code;
// TypeError for values a signature cannot take.
shell.load("harness.js");

var R = plugin.results;
var m = launch();
var exits = [];
m.onexit = function(status) { exits.push(status); };

test("a method's own failure", function() {
  var e = throws(function() { m.fail(R.srpc.APP_ERROR); },
                 pluginError("srpc", R.srpc.APP_ERROR));
  check(e.message.indexOf("268") >= 0, "the code in the message: " + e.message);
  throws(function() { m.fail(R.srpc.NO_MEMORY); },
         pluginError("srpc", R.srpc.NO_MEMORY));
});

test("no such method", function() {
  throws(function() { m.call("missing"); },
         pluginError("srpc", R.srpc.BAD_RPC_NUMBER));
  eq(m.call("add", 20, 22), 42, "call by name works");
  eq(m.call("add:ii:i", 1, 1), 2, "call by signature works");
});

test("wrong arguments", function() {
  throws(function() { m.add(1); }, typeError, "too few");
  throws(function() { m.add(1, 2, 3); }, typeError, "too many");
  throws(function() { m.add("1", 2); }, typeError, "a string for i");
  throws(function() { m.postMessage("text"); }, typeError, "a string posted");
  throws(function() { plugin.exportObject({}, ["bad"]); }, typeError,
         "a bad signature");
  throws(function() { plugin.make_socket(5); }, typeError, "no callback");
});

test("a call that takes too long", function() {
  var saved = plugin.callTimeoutMs;
  plugin.callTimeoutMs = 100;
  var t0 = shell.now();
  throws(function() { m.sleep(1000); },
         pluginError("srpc", R.srpc.TIMED_OUT));
  check(shell.now() - t0 < 900, "promptly");
  plugin.callTimeoutMs = saved;
  eq(m.add(1, 2), 3, "the channel still works");
});

test("a program that cannot start", function() {
  var e = throws(function() { plugin.launch("/nonexistent/module"); },
                 pluginError("plugin", R.plugin.SPAWN));
  eq(e.errno, 2, "ENOENT");
});

test("a file that is not there", function() {
  var e = throws(function() { shell.open(SCRATCH + "/none", "r"); },
                 pluginError("system", 2));
  check(e.message.indexOf("No such file") >= 0, e.message);
});

test("an exported method that throws fails the module's call", function() {
  var root = m.root();
  var bad = plugin.exportObject({
    add: function() { throw new Error("on purpose"); }
  }, ["add:ii:i"]);
  throws(function() { root.call_add(bad, 1, 2); },
         pluginError("object", R.object.METHOD_FAILED));
  var wrong = plugin.exportObject({add: function() { return "x"; }},
                                  ["add:ii:i"]);
  throws(function() { root.call_add(wrong, 1, 2); },
         pluginError("object", R.object.METHOD_FAILED));
});

test("a module that dies", function() {
  throws(function() { m.exit(3); }, pluginError("srpc", R.srpc.INTERNAL));
  throws(function() { m.add(1, 2); }, pluginError("srpc", R.srpc.INTERNAL));
  waitUntil(function() { return exits.length === 1; }, 5000, "onexit");
  eq(exits[0], 3 << 8, "its wait status");
  throws(function() { m.postMessage(bytes("x")); },
         pluginError("plugin", R.plugin.CLOSED));
});

test("a module that was shut down", function() {
  var other = launch();
  other.shutdown(1000);
  check(!other.isAlive(), "not alive");
  throws(function() { other.add(1, 2); },
         pluginError("plugin", R.plugin.CLOSED));
});

runAll();
m.shutdown(0);
