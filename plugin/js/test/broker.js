// Seed 000's scenario, in JavaScript: plugin.make_socket(callback) -> fd;
// the fd goes to the module at start-up; the module's open() becomes a
// request on that socket; the callback answers each request with the
// opened file's descriptor, or with an error. Where the build links the
// module statically it runs in the sandbox, so the broker is its only way
// to a file.
shell.load("harness.js");

var O_ACCMODE = 3, O_RDONLY = 0;
var EACCES = 13, ENOENT = 2, EPROTO = 71;
var REQUEST_MAGIC = 0x31515242, REPLY_MAGIC = 0x31505242, OP_OPEN = 1;

var allowed = SCRATCH + "/allowed.txt";
var content = "brokered by a script\n";
var f = shell.open(allowed, "w");
shell.write(f, bytes(content));
f.close();
var secret = shell.open(SCRATCH + "/secret.txt", "w");
shell.write(secret, bytes("no"));
secret.close();

var seen = [];  // the paths asked for, in order

// The broker: decodes the request (docs/broker.md gives the format),
// decides, and answers on the reply socket the request carried.
function answer(request) {
  if (request === null)
    return;  // the module's end closed
  var reply_to = request.descriptors[0];
  var result = -EPROTO, file = null;
  var v = new DataView(request.data);
  if (request.data.byteLength >= 20 && v.getUint32(0, true) === REQUEST_MAGIC &&
      v.getUint32(16, true) === request.data.byteLength - 20) {
    var path = text(request.data.slice(20));
    var flags = v.getUint32(8, true);
    seen.push(path);
    if (v.getUint32(4, true) !== OP_OPEN || path !== allowed ||
        (flags & O_ACCMODE) !== O_RDONLY) {
      result = -EACCES;
    } else {
      try {
        file = shell.open(path, "r");
        result = 0;
      } catch (e) {
        result = -ENOENT;
      }
    }
  }
  var reply = new DataView(new ArrayBuffer(8));
  reply.setUint32(0, REPLY_MAGIC, true);
  reply.setInt32(4, result, true);
  reply_to.send(reply.buffer, file !== null ? [file] : []);
  reply_to.close();
  if (file !== null)
    file.close();
}

var fd = plugin.make_socket(answer);
var m = launch([], {sandbox: CAN_SANDBOX});

test("the module gets the broker's descriptor at start-up", function() {
  m.postMessage(bytes("broker"), [fd]);
  fd.close();  // the module has its own copy now
  var reply = m.waitForMessage(5000);
  check(reply !== null, "an answer");
  eq(text(reply.data), "broker-ok", "the module took it");
});

// The module's open() needs the callback, which runs on the loop: the page
// calls read_file asynchronously and runs the loop meanwhile, as a page
// does. (A synchronous call runs only calls into exported objects while it
// waits, never message callbacks.)
function readFile(path) {
  var result = null;
  m.read_file(path, function(err, r) {
    check(err === null, "read_file failed: " + err);
    result = r;
  });
  waitUntil(function() { return result !== null; }, 5000, "read_file");
  return result;
}

test("an allowed file is opened by the script and read by the module", function() {
  var r = readFile(allowed);
  eq(r[0], 0, "errno");
  eq(text(r[1]), content, "the file's content");
  eq(seen[seen.length - 1], allowed, "the script saw the path");
});

test("anything else is refused by the script's policy", function() {
  var r = readFile(SCRATCH + "/secret.txt");
  eq(r[0], EACCES, "errno of a file outside the policy");
  eq(r[1].byteLength, 0, "nothing read");
  eq(readFile("/etc/passwd")[0], EACCES, "/etc/passwd");
  eq(readFile(SCRATCH + "/../" + SCRATCH + "/allowed.txt")[0], EACCES,
     "another spelling");
});

test("many requests, each answered on its own reply socket", function() {
  var pending = 50;
  for (var i = 0; i < 50; i++) {
    m.read_file(allowed, function(err, r) {
      check(err === null && r[0] === 0, "a read failed");
      pending--;
    });
  }
  waitUntil(function() { return pending === 0; }, 10000, "fifty reads");
  eq(seen.length, 54, "every request reached the script");
});

runAll();
m.shutdown(1000);
