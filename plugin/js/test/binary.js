// Binary data goes as ArrayBuffer, every byte value intact, both through
// SRPC calls and postMessage; every SRPC type maps to its script type.
shell.load("harness.js");

var m = launch();

test("echo of every byte value through a call", function() {
  var data = new Uint8Array(256 * 4);
  for (var i = 0; i < data.length; i++)
    data[i] = i & 255;
  var back = m.echo(data);
  check(back instanceof ArrayBuffer, "an ArrayBuffer, got " + show(back));
  check(sameBytes(back, data), "the same bytes");
});

test("echo of an empty buffer and of one MiB", function() {
  eq(m.echo(new ArrayBuffer(0)).byteLength, 0, "empty");
  var big = new Uint8Array(1 << 20);
  for (var i = 0; i < big.length; i++)
    big[i] = (i * 7) & 255;
  check(sameBytes(m.echo(big.buffer), big), "1 MiB");
});

test("a view sends only its own bytes", function() {
  var all = bytes([9, 9, 1, 2, 3, 9]);
  var view = new Uint8Array(all.buffer, 2, 3);
  check(sameBytes(m.echo(view), [1, 2, 3]), "the slice");
  check(sameBytes(m.echo(new DataView(all.buffer, 1, 2)), [9, 1]), "DataView");
});

test("postMessage of every byte value comes back as an ArrayBuffer", function() {
  var data = new Uint8Array(256);
  for (var i = 0; i < 256; i++)
    data[i] = 255 - i;
  var got = null;
  m.onmessage = function(event) {
    got = event;
  };
  m.postMessage(data);
  check(plugin.waitForMessage(5000), "a message");
  check(got !== null, "onmessage ran");
  check(got.data instanceof ArrayBuffer, "data is an ArrayBuffer");
  check(sameBytes(got.data, data), "the same bytes");
  eq(got.descriptors.length, 0, "no descriptors");
  check(got.target === m, "target is the module");
  m.onmessage = null;
});

test("every SRPC type to its script type and back", function() {
  var devnull = shell.open("/dev/null", "r");
  var r = m.types(true, -2147483648, 1.25, 4503599627370496, "h\u00e9llo",
                  bytes([0, 255]), [1, -2, 2147483647],
                  new Float64Array([0.5, -Infinity]),
                  [-9007199254740992, "9223372036854775807"], devnull);
  eq(r.length, 10, "ten results");
  eq(r[0], true, "b");
  eq(r[1], -2147483648, "i");
  eq(r[2], 1.25, "d");
  eq(r[3], 4503599627370496, "l");
  eq(r[4], "h\u00e9llo", "s");
  check(r[5] instanceof ArrayBuffer && sameBytes(r[5], [0, 255]), "C");
  check(r[6] instanceof Int32Array, "I is an Int32Array");
  eq(r[6][2], 2147483647, "I value");
  check(r[7] instanceof Float64Array, "D is a Float64Array");
  eq(r[7][1], -Infinity, "D value");
  eq(r[8][0], -9007199254740992, "L within 2^53 is a number");
  eq(r[8][1], "9223372036854775807", "L beyond 2^53 is a string");
  check(r[9].isOpen() && r[9].number() !== devnull.number(),
        "h: a new descriptor");
  r[9].close();
  devnull.close();
});

test("longs beyond 2^53 come back as exact decimal strings", function() {
  var devnull = shell.open("/dev/null", "r");
  var r = m.types(false, 0, 0, "9007199254740993", "", bytes([]), [], [],
                  ["-9007199254740993", 9007199254740992], devnull);
  eq(r[3], "9007199254740993", "l: 2^53 + 1, not rounded");
  eq(r[8][0], "-9007199254740993", "L: -(2^53 + 1)");
  eq(r[8][1], 9007199254740992, "L: 2^53 itself is a number");
  r[9].close();
  devnull.close();
});

test("values that do not fit are refused before anything is sent", function() {
  throws(function() { m.add(2147483648, 0); }, typeError, "int overflow");
  throws(function() { m.add(1.5, 0); }, typeError, "a fraction");
  throws(function() { m.echo("text"); }, typeError, "a string for C");
  throws(function() { m.types(true, 0, 0, 0, "a\u0000b", bytes([]), [], [],
                              [], shell.open("/dev/null")); },
         typeError, "U+0000 in a string");
  throws(function() { m.types(true, 0, 0, 9007199254740994, "", bytes([]), [],
                              [], [], shell.open("/dev/null")); },
         typeError, "an inexact long");
  throws(function() { m.echo({get byteLength() { throw new Error("x"); }}); },
         typeError, "an object that is no buffer");
  var hostile = [1, 2];
  Object.defineProperty(hostile, 1, {get: function() { throw new RangeError("getter"); }});
  throws(function() { m.types(true, 0, 0, 0, "", bytes([]), hostile, [], [],
                              shell.open("/dev/null")); },
         function(e) { check(e instanceof RangeError, "the getter's error: " + e); },
         "a getter that throws during conversion");
  eq(m.add(2, 3), 5, "the channel still works");
});

runAll();
m.shutdown(1000);
