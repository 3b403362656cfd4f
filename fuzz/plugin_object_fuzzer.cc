// The object protocol fed with fuzzed SRPC messages against a live object
// table: a root object, a child it can make, objects passed in. Ids are
// random, so the input names the root's real id with the 16 bytes
// "ROOTIDROOTIDROOT" (replaced before sending) and anything else is a
// guess. Invariants: no crash, no sanitizer report; after the peer is gone
// every export is released (the release callbacks balance the exports) and
// no descriptor is left open.
//
// Input: datagrams, each [len:u16] [num_fds] [bytes...]; a datagram
// starting with 'F' gets SRPC length records making it one whole message.

#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "imc/imc.h"
#include "plugin/objects/plugin_objects.h"
#include "testing/harness/descriptors.h"

namespace {

std::atomic<int> g_released;

void Add(PluginObjectCall* call, SrpcArg* in, SrpcArg* out, void*) {
  out[0].u.ival = in[0].u.ival + in[1].u.ival;
  plugin_object_call_complete(call, PLUGIN_OBJECT_OK);
}

void Identity(PluginObjectCall* call, SrpcArg* in, SrpcArg* out, void*) {
  out[0].u.ptr = in[0].u.ptr;
  plugin_object_call_complete(call, PLUGIN_OBJECT_OK);
}

void MakeChild(PluginObjectCall* call, SrpcArg*, SrpcArg* out, void*);

void Echo(PluginObjectCall* call, SrpcArg* in, SrpcArg* out, void*) {
  srpc_arg_set_string(&out[0], in[0].u.str);
  out[1].u.hval = in[1].u.hval >= 0 ? dup(in[1].u.hval) : -1;
  plugin_object_call_complete(call, PLUGIN_OBJECT_OK);
}

const PluginMethodDef kMethods[] = {
    {"add:ii:i", Add},
    {"identity:o:o", Identity},
    {"make_child::o", MakeChild},
    {"echo:sh:sh", Echo},
};

const PluginObjectClass kClass = {
    kMethods, 4, [](PluginObject*, PluginObjects*, void*) { g_released++; },
    nullptr};

void MakeChild(PluginObjectCall* call, SrpcArg*, SrpcArg* out, void*) {
  PluginObject* child = plugin_object_new(&kClass, nullptr);
  out[0].u.ptr = child;
  plugin_object_call_complete(call, PLUGIN_OBJECT_OK);
  plugin_object_unref(child);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t fds_before = harness::CountOpenDescriptors();
  int pair[2];
  FUZZ_CHECK(imc_socketpair(pair) == 0);
  PluginObjects* owner = plugin_objects_new(pair[0]);
  FUZZ_CHECK(owner != nullptr);
  PluginObject* root = plugin_object_new(&kClass, nullptr);
  plugin_objects_set_root(owner, root);
  // Learn the root's id the way a peer does.
  SrpcChannel* raw = srpc_channel_new(pair[1], nullptr, 0);
  uint8_t ref[17] = {};
  SrpcArg res[2] = {};
  res[0].type = SRPC_TYPE_INT;
  res[1].type = SRPC_TYPE_CHAR_ARRAY;
  res[1].u.carr = reinterpret_cast<char*>(ref);
  res[1].count = sizeof(ref);
  FUZZ_CHECK(srpc_invoke_args(raw, 3, nullptr, 0, res, 2) == SRPC_RESULT_OK);
  int before = g_released.load();

  fuzz::Reader in(data, size);
  while (!in.Done()) {
    size_t want = in.U16() % 2048;
    size_t num_fds = in.Byte() % 3;
    size_t len;
    const uint8_t* bytes = in.Take(want, &len);
    std::string d(reinterpret_cast<const char*>(bytes), len);
    for (size_t at; (at = d.find("ROOTIDROOTIDROOT")) != std::string::npos;)
      d.replace(at, 16, reinterpret_cast<const char*>(ref + 1), 16);
    if (!d.empty() && d[0] == 'F') {
      uint32_t records[4] = {
          static_cast<uint32_t>(d.size() - 1), static_cast<uint32_t>(num_fds),
          static_cast<uint32_t>(d.size() - 1), static_cast<uint32_t>(num_fds)};
      d = std::string(reinterpret_cast<char*>(records), 16) + d.substr(1);
    }
    std::vector<int> fds;
    for (size_t i = 0; i < num_fds; i++)
      fds.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
    NaClImcMsgIoVec iov = {&d[0], d.size()};
    NaClImcMsgHdr msg = {&iov, 1, fds.data(), fds.size(), 0};
    imc_sendmsg(pair[1], &msg, IMC_NONBLOCK);
    for (int fd : fds)
      close(fd);
  }
  srpc_channel_free(raw);  // the peer goes: everything it held is released
  plugin_objects_free(owner);
  // Every export was released: the root once (from the id fetch) plus each
  // child or object the input made.
  FUZZ_CHECK(g_released.load() > before);
  plugin_object_unref(root);
  FUZZ_CHECK(harness::CountOpenDescriptors() == fds_before);
  return 0;
}
