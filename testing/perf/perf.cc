#include "testing/perf/perf.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "imc/imc.h"

namespace perf {

namespace {
std::vector<pid_t>& Peers() {
  static std::vector<pid_t> peers;
  return peers;
}
}  // namespace

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      o.quick = true;
    else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc)
      o.csv = argv[++i];
  }
  if (o.quick) {
    o.repetitions = 3;
    o.scale = 10;
  }
  return o;
}

int ForkPeer(const std::function<void(int)>& serve) {
  int pair[2];
  if (imc_socketpair(pair) != 0)
    return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(pair[0]);
    serve(pair[1]);
    _exit(0);
  }
  close(pair[1]);
  if (pid < 0) {
    close(pair[0]);
    return -1;
  }
  Peers().push_back(pid);
  return pair[0];
}

void WaitForPeers() {
  for (pid_t pid : Peers())
    waitpid(pid, nullptr, 0);
  Peers().clear();
}

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

double TimePerOp(const std::function<void()>& op, int iterations) {
  int64_t start = NowNs();
  for (int i = 0; i < iterations; i++)
    op();
  return static_cast<double>(NowNs() - start) / iterations;
}

Comparison Compare(const std::string& name,
                   const std::function<void()>& baseline,
                   const std::function<void()>& subject,
                   int iterations,
                   int repetitions) {
  Comparison c;
  c.name = name;
  TimePerOp(baseline, iterations / 4 + 1);
  TimePerOp(subject, iterations / 4 + 1);
  for (int r = 0; r < repetitions; r++) {
    // Alternate which goes first, so neither always runs on a warmer cache.
    if (r % 2 == 0) {
      c.baseline_ns.push_back(TimePerOp(baseline, iterations));
      c.subject_ns.push_back(TimePerOp(subject, iterations));
    } else {
      c.subject_ns.push_back(TimePerOp(subject, iterations));
      c.baseline_ns.push_back(TimePerOp(baseline, iterations));
    }
  }
  return c;
}

double Median(std::vector<double> values) {
  if (values.empty())
    return 0;
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

void PrintHeader(const char* baseline_label, const char* subject_label) {
  printf("%-36s %12s %12s %7s %15s\n", "case", baseline_label, subject_label,
         "ratio", "round ratios");
}

void Print(const Comparison& c, const std::string& csv_path) {
  double base = Median(c.baseline_ns);
  double subject = Median(c.subject_ns);
  std::vector<double> ratios;
  for (size_t i = 0; i < c.subject_ns.size(); i++)
    ratios.push_back(c.subject_ns[i] / c.baseline_ns[i]);
  auto [lo, hi] = std::minmax_element(ratios.begin(), ratios.end());
  printf("%-36s %10.2fus %10.2fus %7.3f %7.3f..%-7.3f\n", c.name.c_str(),
         base / 1000, subject / 1000, subject / base, *lo, *hi);
  fflush(stdout);
  if (csv_path.empty())
    return;
  FILE* f = fopen(csv_path.c_str(), "ae");
  if (f == nullptr)
    return;
  std::string name = c.name;  // one field: no commas in it
  std::replace(name.begin(), name.end(), ',', ';');
  fprintf(f, "\"%s\",%.1f,%.1f,%.4f,%.4f,%.4f\n", name.c_str(), base, subject,
          subject / base, *lo, *hi);
  fclose(f);
}

}  // namespace perf
