// The scripts' test harness: test(name, fn) registers a test, runAll() runs
// them in order, prints "ok NAME" or "FAIL NAME: why" for each and, if all
// passed, "ALL PASSED n"; a failure makes the script throw at the end.
//
// shell.args: [module path, scratch directory, "sandbox" | "no-sandbox"].

var MODULE = shell.args[0];
var SCRATCH = shell.args[1];
var CAN_SANDBOX = shell.args[2] === "sandbox";

var tests = [];

function test(name, fn) {
  tests.push({name: name, fn: fn});
}

function show(v) {
  if (typeof v === "string")
    return JSON.stringify(v);
  if (v instanceof ArrayBuffer)
    return "ArrayBuffer(" + v.byteLength + ")";
  return String(v);
}

function fail(why) {
  throw new Error(why);
}

function check(cond, what) {
  if (!cond)
    fail("check failed: " + what);
}

function eq(actual, expected, what) {
  if (actual !== expected)
    fail((what ? what + ": " : "") + "expected " + show(expected) +
         ", got " + show(actual));
}

// Runs fn, which must throw; returns the error after checking it.
function throws(fn, check_error, what) {
  var error = null;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  if (error === null)
    fail((what || "call") + " did not throw");
  if (check_error)
    check_error(error);
  return error;
}

// A PluginError of the layer and code given.
function pluginError(layer, code) {
  return function(e) {
    eq(e.name, "PluginError", "error name (" + e + ")");
    eq(e.layer, layer, "error layer (" + e + ")");
    eq(e.code, code, "error code (" + e + ")");
  };
}

function typeError(e) {
  check(e instanceof TypeError, "a TypeError, got " + e);
}

// Bytes from a list of numbers, or a string's char codes (ASCII).
function bytes(list) {
  if (typeof list === "string") {
    var codes = [];
    for (var i = 0; i < list.length; i++)
      codes.push(list.charCodeAt(i));
    list = codes;
  }
  var a = new Uint8Array(list.length);
  for (var j = 0; j < list.length; j++)
    a[j] = list[j];
  return a;
}

function text(buffer) {
  var a = new Uint8Array(buffer);
  var s = "";
  for (var i = 0; i < a.length; i++)
    s += String.fromCharCode(a[i]);
  return s;
}

function sameBytes(a, b) {
  var x = new Uint8Array(a), y = new Uint8Array(b);
  if (x.length !== y.length)
    return false;
  for (var i = 0; i < x.length; i++) {
    if (x[i] !== y[i])
      return false;
  }
  return true;
}

// Runs the loop (tasks, messages, callbacks) in small steps until pred()
// holds; fails after ms.
function waitUntil(pred, ms, what) {
  var end = shell.now() + ms;
  while (!pred()) {
    if (shell.now() > end)
      fail("timed out waiting for " + what);
    plugin.run(5);
  }
}

function launch(args, options) {
  return plugin.launch(MODULE, args || [], options || {});
}

function runAll() {
  var failed = 0;
  for (var i = 0; i < tests.length; i++) {
    try {
      tests[i].fn();
      print("ok " + tests[i].name);
    } catch (e) {
      failed++;
      print("FAIL " + tests[i].name + ": " + (e && e.stack ? e.stack : e));
    }
  }
  if (failed > 0)
    throw new Error(failed + " of " + tests.length + " tests failed");
  print("ALL PASSED " + tests.length);
}
