// Draws a matrix as a labelled heatmap image: one coloured cell per value (rows top to bottom,
// columns left to right), row labels on the left, column labels on top, a colour scale bar from
// 0 to the largest value, and the values printed in the cells when the map is at most 16x16.
// Written as PNG (libpng; text from a built-in 5x7 bitmap font) or SVG. Pure functions.
#ifndef ATTNSERVE_CLIENT_HEATMAP_H_
#define ATTNSERVE_CLIENT_HEATMAP_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace attn {

struct Heatmap {
  int rows = 0;
  int cols = 0;
  std::vector<float> values;            // rows x cols, row-major; >= 0 (e.g. probabilities)
  std::vector<std::string> row_labels;  // one per row
  std::vector<std::string> col_labels;  // one per column
  std::string title;                    // above the map
  std::string row_axis;                 // what the rows are, written beside the row labels
  std::string col_axis;                 // what the columns are, written above the column labels
};

enum class ImageFormat { kPng, kSvg };

// The format a file name asks for: ".png" or ".svg" (case-insensitive), else InvalidArgument.
absl::StatusOr<ImageFormat> ImageFormatOf(const std::string& path);

// Writes `map` to `path` in `format`; InvalidArgument when the labels or values do not match
// rows x cols, Internal when the file cannot be written.
absl::Status WriteHeatmap(const Heatmap& map, ImageFormat format, const std::string& path);

}  // namespace attn

#endif  // ATTNSERVE_CLIENT_HEATMAP_H_
