// A main() for the fuzz harness without libFuzzer: replays corpus files and folders through
// LLVMFuzzerTestOneInput (the ctest `fuzz_replay`), runs a number of random inputs, or writes
// the seed corpus.
//
//   umfa_fuzz_replay PATH...                 replay files, and every file of folders, in order
//   umfa_fuzz_replay --random N [--seed S]   also run N pseudo-random inputs
//   umfa_fuzz_replay --write-seeds DIR N     write N seed inputs to DIR (deterministic)
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv);
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" void umfa_fuzz_stats(uint64_t* calls, uint64_t* ok, uint64_t* rejected, uint64_t* compared,
                                uint64_t* skipped);
extern "C" const uint64_t* umfa_fuzz_status_counts();
extern "C" void umfa_fuzz_set_label(const char* label);
extern "C" const char* umfa_status_string(int32_t status);

namespace {

uint64_t g_state = 0x2545F4914F6CDD1Dull;
uint64_t next() {
  g_state ^= g_state << 13;
  g_state ^= g_state >> 7;
  g_state ^= g_state << 17;
  return g_state;
}

// One pseudo-random input: the first byte picks the entry point (every kind in turn, the
// classic forward as the 17th), the rest is random.
std::vector<uint8_t> random_input(uint64_t i, size_t max_len) {
  const size_t len = 24 + next() % (max_len - 23);
  std::vector<uint8_t> v(len);
  for (auto& b : v) b = static_cast<uint8_t>(next());
  v[0] = static_cast<uint8_t>(i % 17 == 16 ? 240 + v[0] % 16 : i % 17);
  return v;
}

bool read_file(const std::string& path, std::vector<uint8_t>* out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  out->clear();
  unsigned char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->insert(out->end(), buf, buf + n);
  std::fclose(f);
  return true;
}

void collect(const std::string& path, std::vector<std::string>* files) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "umfa_fuzz_replay: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  if (!S_ISDIR(st.st_mode)) {
    files->push_back(path);
    return;
  }
  std::vector<std::string> names;
  if (DIR* d = opendir(path.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.' && std::strcmp(e->d_name, "README.md") != 0) names.push_back(e->d_name);
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  for (const auto& n : names) files->push_back(path + "/" + n);
}

}  // namespace

int main(int argc, char** argv) {
  LLVMFuzzerInitialize(&argc, &argv);
  std::vector<std::string> files;
  uint64_t random = 0;
  size_t max_len = 160;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--random" && i + 1 < argc) {
      random = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--seed" && i + 1 < argc) {
      g_state = std::strtoull(argv[++i], nullptr, 10) * 0x9E3779B97F4A7C15ull + 1;
    } else if (a == "--max-len" && i + 1 < argc) {
      max_len = std::max<size_t>(32, std::strtoull(argv[++i], nullptr, 10));
    } else if (a == "--write-seeds" && i + 2 < argc) {
      const std::string dir = argv[++i];
      const uint64_t n = std::strtoull(argv[++i], nullptr, 10);
      for (uint64_t k = 0; k < n; ++k) {
        const std::vector<uint8_t> v = random_input(k, 120);
        char name[64];
        std::snprintf(name, sizeof name, "/seed-%03" PRIu64, k);
        FILE* f = std::fopen((dir + name).c_str(), "wb");
        if (!f || std::fwrite(v.data(), 1, v.size(), f) != v.size()) {
          std::fprintf(stderr, "umfa_fuzz_replay: cannot write %s%s\n", dir.c_str(), name);
          return 2;
        }
        std::fclose(f);
      }
      std::printf("wrote %" PRIu64 " seeds to %s\n", n, dir.c_str());
      return 0;
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: %s [--random N] [--seed S] [--max-len L] [PATH...] | --write-seeds DIR N\n", argv[0]);
      return 0;
    } else {
      collect(a, &files);
    }
  }
  std::vector<uint8_t> data;
  for (const auto& f : files) {
    if (!read_file(f, &data)) {
      std::fprintf(stderr, "umfa_fuzz_replay: cannot read %s\n", f.c_str());
      return 2;
    }
    umfa_fuzz_set_label(f.c_str());  // named with a failure
    LLVMFuzzerTestOneInput(data.data(), data.size());
  }
  for (uint64_t i = 0; i < random; ++i) {
    const std::vector<uint8_t> v = random_input(i, max_len);
    char label[64];
    std::snprintf(label, sizeof label, "random input %" PRIu64, i);
    umfa_fuzz_set_label(label);
    LLVMFuzzerTestOneInput(v.data(), v.size());
  }
  uint64_t calls, ok, rejected, compared, skipped;
  umfa_fuzz_stats(&calls, &ok, &rejected, &compared, &skipped);
  std::printf("umfa_fuzz_replay: %zu files + %" PRIu64 " random inputs: %" PRIu64 " calls (%" PRIu64
              " succeeded, %" PRIu64 " checked against the float64 reference; %" PRIu64
              " rejected), %" PRIu64 " inputs skipped, 0 failures\n",
              files.size(), random, calls, ok, compared, rejected, skipped);
  if (std::getenv("UMFA_FUZZ_VERBOSE")) {
    const uint64_t* by = umfa_fuzz_status_counts();
    for (int s = 0; s < 32; ++s)
      if (by[s]) std::printf("  %8" PRIu64 "  %s\n", by[s], umfa_status_string(s));
  }
  return 0;
}
