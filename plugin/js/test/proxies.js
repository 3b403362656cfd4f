// Objects both ways: the module's objects are proxies with methods (and
// properties, from get_x/set_x); the script's objects, once exported, are
// called by the module, come back as themselves, and stay alive while the
// module holds them.
shell.load("harness.js");

var m = launch();
var root = m.root();

test("the root proxy lists and calls the module's methods", function() {
  check(root.methods.indexOf("make_counter:i:o") >= 0, "make_counter listed");
  var c = root.make_counter(5);
  eq(c.inc(), 6, "inc");
  eq(c.inc(), 7, "inc again");
  eq(c.invoke("inc"), 8, "by name");
});

test("get_x/set_x pairs are a property", function() {
  var c = root.make_counter(1);
  eq(c.value, 1, "get");
  c.value = 41;
  eq(c.get_value(), 41, "set went through");
  eq(c.inc(), 42, "and the object saw it");
});

var calculator = plugin.exportObject({
  add: function(a, b) { return a + b; },
  greet: function(who) { return "hello, " + who; }
}, ["add:ii:i", "greet:s:s"]);

test("the module calls an exported script object", function() {
  eq(root.call_add(calculator, 2, 3), 5, "add through the module");
  eq(root.greet(calculator, "module"), "hello, module", "a string back");
});

test("an exported object comes back as itself", function() {
  check(root.same(calculator) === calculator, "the same object");
  eq(root.same(null), null, "null stays null");
});

test("a method of the script can call the module while it is called", function() {
  var nested = plugin.exportObject({
    add: function(a, b) { return m.add(a, b) * 10; }
  }, ["add:ii:i"]);
  eq(root.call_add(nested, 1, 2), 30, "module -> script -> module");
});

test("an object the module holds stays alive when the script drops it", function() {
  (function() {
    var kept = plugin.exportObject({
      add: function(a, b) { return a - b; }
    }, ["add:ii:i"]);
    root.keep(kept);
    eq(plugin.exports(kept), 1, "exported on one channel");
  })();
  shell.gc();
  eq(root.kept_add(10, 4), 6, "still callable after a collection");
});

test("the module letting go is seen by the script", function() {
  var o = plugin.exportObject({add: function(a, b) { return 0; }},
                              ["add:ii:i"]);
  root.keep(o);
  eq(plugin.exports(o), 1, "held");
  root.drop();
  waitUntil(function() { return plugin.exports(o) === 0; }, 5000,
            "the release");
});

test("a proxy's methods refuse wrong arguments", function() {
  var c = root.make_counter(0);
  throws(function() { c.set_value("x"); }, typeError);
  throws(function() { root.call_add({}, 1, 2); }, typeError);
  throws(function() { c.invoke("nope"); },
         pluginError("object", plugin.results.object.NO_SUCH_METHOD));
});

test("an object is held while a call carrying it is under way", function() {
  var done = false;
  (function() {
    var o = plugin.exportObject({add: function(a, b) { return a * b; }},
                                ["add:ii:i"]);
    root.keep(o, function(err) { done = err === null; });
    // A failing call with the same object, while keep is out.
    throws(function() { root.call_add(o, "x", 1); }, typeError);
  })();
  shell.gc();
  waitUntil(function() { return done; }, 5000, "keep");
  shell.gc();
  eq(root.kept_add(6, 7), 42, "the module's object still answers");
  root.drop();
});

test("an exported method's getter that throws fails only that call", function() {
  var bad = plugin.exportObject({get add() { throw new Error("getter"); }},
                                ["add:ii:i"]);
  throws(function() { root.call_add(bad, 1, 2); },
         pluginError("object", plugin.results.object.METHOD_FAILED));
  eq(root.call_add(calculator, 1, 2), 3, "the channel still works");
});

test("inherited native state is not the object's own", function() {
  var c = root.make_counter(3);
  var fake = Object.create(c);
  fake.release();  // not a proxy itself: nothing happens
  eq(c.inc(), 4, "the real proxy still works");
  throws(function() { fake.inc(); },
         pluginError("object", plugin.results.object.NOT_A_PROXY));
  var fd = shell.open("/dev/null", "r");
  Object.create(fd).close();
  check(fd.isOpen(), "the real descriptor is still open");
  fd.close();
  throws(function() { Object.create(m).shutdown(0); },
         pluginError("plugin", plugin.results.plugin.CLOSED));
  eq(m.add(1, 1), 2, "the module still runs");
});

test("a module shut down from inside its own call into the script", function() {
  var other = launch();
  var killer = plugin.exportObject({
    add: function(a, b) { other.shutdown(0); return a + b; }
  }, ["add:ii:i"]);
  var otherRoot = other.root();
  throws(function() { otherRoot.call_add(killer, 1, 2); },
         function(e) { eq(e.name, "PluginError", "an error, not a hang"); });
  check(!other.isAlive(), "shut down");
});

test("a slow asynchronous call does not hold up a synchronous one", function() {
  var other = launch();
  var done = false;
  other.sleep(1000, function() { done = true; });
  var t0 = shell.now();
  eq(m.add(1, 2), 3, "the synchronous call");
  check(shell.now() - t0 < 500, "not behind the slow one: " +
        (shell.now() - t0) + " ms");
  waitUntil(function() { return done; }, 5000, "the slow one");
  other.shutdown(0);
});

runAll();
m.shutdown(1000);
