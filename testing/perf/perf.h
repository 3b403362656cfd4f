// Helpers for perftest binaries: each figure is measured against a raw
// baseline in the same run, interleaved, over several repetitions; the
// median ratio is the headline.

#ifndef TESTING_PERF_PERF_H_
#define TESTING_PERF_PERF_H_

#include <stdint.h>

#include <functional>
#include <string>
#include <vector>

namespace perf {

// The command line every perftest takes: [--quick] [--csv FILE].
struct Options {
  bool quick = false;   // fewer rounds and iterations: a smoke run
  std::string csv;      // append results here when not empty
  int repetitions = 9;  // rounds per comparison
  int scale = 1;        // iterations are divided by this
};
Options ParseOptions(int argc, char** argv);

// Forks a process running `serve(fd)` on one end of a new IMC socket pair
// and returns the other end (-1 on failure). WaitForPeers reaps them all.
int ForkPeer(const std::function<void(int)>& serve);
void WaitForPeers();

// Nanoseconds on the monotonic clock.
int64_t NowNs();

// Runs `op` `iterations` times; returns nanoseconds per call.
double TimePerOp(const std::function<void()>& op, int iterations);

struct Comparison {
  std::string name;
  std::vector<double> baseline_ns;  // per operation, one entry a repetition
  std::vector<double> subject_ns;
};

// Runs `baseline` and `subject` alternately (`repetitions` rounds of
// `iterations` calls each, after one warm-up round) and records both.
Comparison Compare(const std::string& name,
                   const std::function<void()>& baseline,
                   const std::function<void()>& subject,
                   int iterations,
                   int repetitions);

double Median(std::vector<double> values);

// Prints the header of the table Print() writes rows of.
void PrintHeader(const char* baseline_label, const char* subject_label);

// One row: medians, the ratio of medians, and the spread of the per-round
// ratios (min..max). Appends a CSV line to `csv` if it is not empty.
void Print(const Comparison& c, const std::string& csv_path);

}  // namespace perf

#endif  // TESTING_PERF_PERF_H_
