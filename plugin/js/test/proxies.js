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

runAll();
m.shutdown(1000);
