// Runs LLVMFuzzerTestOneInput once on each file named on the command line,
// and on each file in each folder named there. Arguments starting with '-'
// (libFuzzer flags) are ignored, so the same command line works for both
// builds. Exits non-zero if an input could not be read.

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc,
                                                          char*** argv);

namespace {

bool ReadFile(const std::string& path, std::vector<uint8_t>* out) {
  FILE* f = fopen(path.c_str(), "rbe");
  if (f == nullptr)
    return false;
  out->clear();
  uint8_t buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
    out->insert(out->end(), buf, buf + n);
  bool ok = !ferror(f);
  fclose(f);
  return ok;
}

void CollectInputs(const std::string& path, std::vector<std::string>* out) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    out->push_back(path);
    return;
  }
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) {
    out->push_back(path);
    return;
  }
  std::vector<std::string> names;
  while (struct dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.')
      names.push_back(path + "/" + entry->d_name);
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  out->insert(out->end(), names.begin(), names.end());
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] != '-')
      CollectInputs(argv[i], &inputs);
  }
  int failures = 0;
  std::vector<uint8_t> data;
  for (const std::string& input : inputs) {
    if (!ReadFile(input, &data)) {
      fprintf(stderr, "cannot read %s\n", input.c_str());
      failures++;
      continue;
    }
    LLVMFuzzerTestOneInput(data.data(), data.size());
  }
  printf("replayed %zu inputs\n",
         inputs.size() - static_cast<size_t>(failures));
  return failures == 0 ? 0 : 1;
}
