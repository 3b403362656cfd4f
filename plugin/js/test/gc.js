// Seed 001's "visibility of garbage collection": a proxy the collector
// takes releases its object at the owner; the module sees it.
shell.load("harness.js");

var m = launch();
var root = m.root();

function live() {
  return root.live()[0];
}

test("collected proxies release their objects in the module", function() {
  eq(live(), 0, "none yet");
  (function() {
    var held = [];
    for (var i = 0; i < 20; i++)
      held.push(root.make_counter(i));
    eq(live(), 20, "twenty alive");
    eq(held[19].inc(), 20, "usable");
  })();
  shell.gc();
  var end = shell.now() + 5000;
  while (live() !== 0 && shell.now() < end)
    shell.sleep(5);
  eq(live(), 0, "all released after the collection");
  eq(root.live()[1], 20, "the module's on_released ran for each");
});

test("a proxy still referenced is not released", function() {
  var c = root.make_counter(7);
  shell.gc();
  shell.sleep(50);
  eq(live(), 1, "alive while referenced");
  eq(c.inc(), 8, "usable after the collection");
  c.release();
  var end = shell.now() + 5000;
  while (live() !== 0 && shell.now() < end)
    shell.sleep(5);
  eq(live(), 0, "release() lets it go at once");
  throws(function() { c.inc(); },
         pluginError("object", plugin.results.object.NOT_A_PROXY));
});

test("proxies die with their module", function() {
  var other = launch();
  var c = other.root().make_counter(1);
  check(c.isAlive(), "alive");
  other.shutdown(1000);
  check(!c.isAlive(), "dead with the module");
  throws(function() { c.inc(); },
         pluginError("object", plugin.results.object.CLOSED));
});

runAll();
m.shutdown(1000);
