// Asynchronous calls: a callback as the last argument makes the call
// return at once; callback(error, result) runs on the loop.
shell.load("harness.js");

var R = plugin.results;
var m = launch();

test("one asynchronous call", function() {
  var result = null;
  eq(m.add(40, 2, function(err, sum) { result = [err, sum]; }), undefined,
     "returns at once");
  waitUntil(function() { return result !== null; }, 5000, "the callback");
  eq(result[0], null, "no error");
  eq(result[1], 42, "the sum");
});

test("a hundred at once, each answered", function() {
  var sums = [];
  for (var i = 0; i < 100; i++) {
    (function(k) {
      m.add(k, k, function(err, sum) {
        check(err === null, "no error");
        sums[k] = sum;
      });
    })(i);
  }
  waitUntil(function() {
    for (var j = 0; j < 100; j++) {
      if (sums[j] === undefined)
        return false;
    }
    return true;
  }, 10000, "every callback");
  for (var k = 0; k < 100; k++)
    eq(sums[k], 2 * k, "sum " + k);
});

test("an error arrives in the callback, not as a throw", function() {
  var got = null;
  m.fail(R.srpc.APP_ERROR, function(err, r) { got = [err, r]; });
  waitUntil(function() { return got !== null; }, 5000, "the callback");
  eq(got[0].name, "PluginError", "an error");
  eq(got[0].code, R.srpc.APP_ERROR, "its code");
  eq(got[1], undefined, "no result");
});

test("slow calls do not hold the script up", function() {
  var done = 0;
  var t0 = shell.now();
  for (var i = 0; i < 4; i++)
    m.sleep(100, function() { done++; });
  check(shell.now() - t0 < 100, "issued at once: " + (shell.now() - t0));
  eq(done, 0, "no callback before the loop runs");
  waitUntil(function() { return done === 4; }, 5000, "four callbacks");
});

test("proxy methods take a callback too", function() {
  var root = m.root();
  var counter = null;
  root.make_counter(9, function(err, c) { counter = c; });
  waitUntil(function() { return counter !== null; }, 5000, "the counter");
  var v = null;
  counter.inc(function(err, x) { v = x; });
  waitUntil(function() { return v !== null; }, 5000, "inc");
  eq(v, 10, "inc's result");
});

test("onmessage while the loop runs", function() {
  var got = [];
  m.onmessage = function(e) {
    got.push(text(e.data));
    if (got.length === 3)
      plugin.quit();
  };
  m.post(bytes("one"));
  m.post(bytes("two"));
  m.post(bytes("three"));
  check(plugin.run(5000), "quit from the handler");
  eq(got.join(","), "one,two,three", "in order");
  m.onmessage = null;
});

runAll();
m.shutdown(1000);
