// `lockstep plot`: a run's curves (losses, accuracies, learning rate, Fréchet distance and any other logged
// figure) and its latest confusion matrix, drawn from <run>/metrics.jsonl as PNG files with PLplot's Cairo
// driver.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace lockstep::launch {

// One metrics.jsonl record: its step, and its numeric fields and matrices by name (in file order).
struct MetricsRecord {
  std::int64_t step = 0;
  std::vector<std::pair<std::string, double>> numbers;  // non-finite values (null in the file) as NaN
  std::vector<std::pair<std::string, std::vector<std::vector<double>>>> matrices;  // arrays of number arrays
};

// Reads <run_dir>/metrics.jsonl. IoError naming the folder when it or the file is missing, and naming the
// file and line for a line that is not a JSON object with a numeric "step" (a torn last line without a
// newline, left by a killed run, is skipped).
std::vector<MetricsRecord> read_metrics(const std::filesystem::path& run_dir);

// Draws every figure of `records` into `output_dir` (created when missing) and returns the files written, in
// order: loss.png (every field with "loss" in its name), accuracy.png (fields ending in "accuracy"),
// lr.png, frechet.png (fields with "frechet" in their name), one <figure>.png per other figure
// (train_/test_/validation_ variants of one name share a plot), and confusion.png from the latest record
// holding a "<split>_confusion" matrix (test preferred, then validation). The x axis is the epoch where
// every record has one, else the step. Each PNG is width x height pixels (the confusion matrix is square,
// height x height). ValueError when `records` hold no figure; IoError when a file cannot be written or when
// PLplot's "pngcairo" driver is missing (naming the package). Not thread-safe (PLplot is not).
std::vector<std::filesystem::path> plot_metrics(const std::vector<MetricsRecord>& records,
                                                const std::filesystem::path& output_dir, int width = 1000,
                                                int height = 640);

}  // namespace lockstep::launch
