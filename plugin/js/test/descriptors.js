// Descriptors are objects: they travel in messages and calls both ways,
// and the collector closes the ones a script drops.
shell.load("harness.js");

var m = launch();
var path = SCRATCH + "/data.txt";
var w = shell.open(path, "w");
shell.write(w, bytes("descriptor payload"));
w.close();

test("a descriptor posted to the module comes back in its echo", function() {
  var file = shell.open(path, "r");
  m.postMessage(bytes("fd"), [file]);
  var reply = m.waitForMessage(5000);
  check(reply !== null, "the echo");
  eq(text(reply.data), "fd", "data");
  eq(reply.descriptors.length, 1, "one descriptor");
  var back = reply.descriptors[0];
  check(back.number() !== file.number(), "a descriptor of its own");
  eq(text(shell.read(back)), "descriptor payload", "the same file");
  back.close();
  file.close();
});

test("a descriptor as an SRPC argument reaches the module", function() {
  var file = shell.open(path, "r");
  eq(text(m.read_fd(file)), "descriptor payload", "what the module read");
  check(file.isOpen(), "the script's own stays open");
  file.close();
});

test("many descriptors in one message", function() {
  var list = [];
  for (var i = 0; i < 200; i++)
    list.push(shell.open(path, "r"));
  m.postMessage(bytes("many"), list);
  var reply = m.waitForMessage(5000);
  eq(reply.descriptors.length, 200, "all came back");
  for (var j = 0; j < 200; j++) {
    list[j].close();
    reply.descriptors[j].close();
  }
});

test("dropped descriptors are closed by the collector", function() {
  var before = shell.descriptorCount();
  (function() {
    for (var i = 0; i < 100; i++)
      shell.open(path, "r");
  })();
  var reply = null;
  m.postMessage(bytes("x"), [shell.open(path, "r")]);
  reply = m.waitForMessage(5000);
  reply = null;
  shell.gc();
  eq(shell.descriptorCount(), before, "descriptors open");
});

test("a closed descriptor is refused, not sent", function() {
  var file = shell.open(path, "r");
  file.close();
  check(!file.isOpen(), "closed");
  throws(function() { m.postMessage(bytes("x"), [file]); }, typeError);
  throws(function() { m.read_fd(file); }, typeError);
  throws(function() { m.postMessage(bytes("x"), [{}]); }, typeError);
});

test("make_socket's descriptor carries messages both ways", function() {
  var got = [];
  var fd = plugin.make_socket(function(msg) {
    if (msg !== null)
      got.push(text(msg.data));
  });
  // Our end is fd's socket: write on the module's end as a module would.
  fd.send(bytes("from the other end"));
  waitUntil(function() { return got.length === 1; }, 5000, "the callback");
  eq(got[0], "from the other end", "the callback's message");
  fd.socket.send(bytes("to the other end"));
  var msg = null;
  waitUntil(function() { return (msg = fd.receive()) !== null; }, 5000,
            "the message");
  eq(text(msg.data), "to the other end", "what the other end read");
  fd.socket.close();
  fd.close();
});

test("a make_socket callback may close its socket at the end", function() {
  var ended = false;
  var fd = plugin.make_socket(function(msg, error) {
    if (msg === null) {
      this.close();
      ended = true;
    }
  });
  fd.close();  // the other end goes: the callback's end
  waitUntil(function() { return ended; }, 5000, "the end");
  plugin.run(20);  // nothing more may run for it
});

runAll();
m.shutdown(1000);
