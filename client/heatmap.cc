// Heatmap images of a matrix (see heatmap.h): one layout drawn on a raster canvas (PNG, text
// from the 5x7 bitmap font below) or on an SVG canvas (text as <text>).
#include "client/heatmap.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace attn {
namespace {

// A 5x7 bitmap font of digits, letters, '.', '-', ',' and space (any other character is drawn
// as a box): 7 rows per glyph, top first; bit 4 is the leftmost column.
struct Glyph {
  char c;
  uint8_t rows[7];
};
constexpr Glyph kFont[] = {
    {'0', {0x0E,0x11,0x13,0x15,0x19,0x11,0x0E}}, {'1', {0x04,0x0C,0x04,0x04,0x04,0x04,0x0E}},
    {'2', {0x0E,0x11,0x01,0x02,0x04,0x08,0x1F}}, {'3', {0x1F,0x02,0x04,0x02,0x01,0x11,0x0E}},
    {'4', {0x02,0x06,0x0A,0x12,0x1F,0x02,0x02}}, {'5', {0x1F,0x10,0x1E,0x01,0x01,0x11,0x0E}},
    {'6', {0x06,0x08,0x10,0x1E,0x11,0x11,0x0E}}, {'7', {0x1F,0x01,0x02,0x04,0x08,0x08,0x08}},
    {'8', {0x0E,0x11,0x11,0x0E,0x11,0x11,0x0E}}, {'9', {0x0E,0x11,0x11,0x0F,0x01,0x02,0x0C}},
    {'A', {0x0E,0x11,0x11,0x1F,0x11,0x11,0x11}}, {'B', {0x1E,0x11,0x11,0x1E,0x11,0x11,0x1E}},
    {'C', {0x0E,0x11,0x10,0x10,0x10,0x11,0x0E}}, {'D', {0x1C,0x12,0x11,0x11,0x11,0x12,0x1C}},
    {'E', {0x1F,0x10,0x10,0x1E,0x10,0x10,0x1F}}, {'F', {0x1F,0x10,0x10,0x1E,0x10,0x10,0x10}},
    {'G', {0x0E,0x11,0x10,0x17,0x11,0x11,0x0F}}, {'H', {0x11,0x11,0x11,0x1F,0x11,0x11,0x11}},
    {'I', {0x0E,0x04,0x04,0x04,0x04,0x04,0x0E}}, {'J', {0x07,0x02,0x02,0x02,0x02,0x12,0x0C}},
    {'K', {0x11,0x12,0x14,0x18,0x14,0x12,0x11}}, {'L', {0x10,0x10,0x10,0x10,0x10,0x10,0x1F}},
    {'M', {0x11,0x1B,0x15,0x15,0x11,0x11,0x11}}, {'N', {0x11,0x11,0x19,0x15,0x13,0x11,0x11}},
    {'O', {0x0E,0x11,0x11,0x11,0x11,0x11,0x0E}}, {'P', {0x1E,0x11,0x11,0x1E,0x10,0x10,0x10}},
    {'Q', {0x0E,0x11,0x11,0x11,0x15,0x12,0x0D}}, {'R', {0x1E,0x11,0x11,0x1E,0x14,0x12,0x11}},
    {'S', {0x0F,0x10,0x10,0x0E,0x01,0x01,0x1E}}, {'T', {0x1F,0x04,0x04,0x04,0x04,0x04,0x04}},
    {'U', {0x11,0x11,0x11,0x11,0x11,0x11,0x0E}}, {'V', {0x11,0x11,0x11,0x11,0x11,0x0A,0x04}},
    {'W', {0x11,0x11,0x11,0x15,0x15,0x15,0x0A}}, {'X', {0x11,0x11,0x0A,0x04,0x0A,0x11,0x11}},
    {'Y', {0x11,0x11,0x0A,0x04,0x04,0x04,0x04}}, {'Z', {0x1F,0x01,0x02,0x04,0x08,0x10,0x1F}},
    {'a', {0x00,0x00,0x0E,0x01,0x0F,0x11,0x0F}}, {'b', {0x10,0x10,0x16,0x19,0x11,0x11,0x1E}},
    {'c', {0x00,0x00,0x0E,0x10,0x10,0x11,0x0E}}, {'d', {0x01,0x01,0x0D,0x13,0x11,0x11,0x0F}},
    {'e', {0x00,0x00,0x0E,0x11,0x1F,0x10,0x0E}}, {'f', {0x06,0x09,0x08,0x1C,0x08,0x08,0x08}},
    {'g', {0x00,0x00,0x0F,0x11,0x0F,0x01,0x0E}}, {'h', {0x10,0x10,0x16,0x19,0x11,0x11,0x11}},
    {'i', {0x04,0x00,0x0C,0x04,0x04,0x04,0x0E}}, {'j', {0x02,0x00,0x06,0x02,0x02,0x12,0x0C}},
    {'k', {0x10,0x10,0x12,0x14,0x18,0x14,0x12}}, {'l', {0x0C,0x04,0x04,0x04,0x04,0x04,0x0E}},
    {'m', {0x00,0x00,0x1A,0x15,0x15,0x11,0x11}}, {'n', {0x00,0x00,0x16,0x19,0x11,0x11,0x11}},
    {'o', {0x00,0x00,0x0E,0x11,0x11,0x11,0x0E}}, {'p', {0x00,0x00,0x1E,0x11,0x1E,0x10,0x10}},
    {'q', {0x00,0x00,0x0F,0x11,0x0F,0x01,0x01}}, {'r', {0x00,0x00,0x16,0x19,0x10,0x10,0x10}},
    {'s', {0x00,0x00,0x0E,0x10,0x0E,0x01,0x1E}}, {'t', {0x08,0x08,0x1C,0x08,0x08,0x09,0x06}},
    {'u', {0x00,0x00,0x11,0x11,0x11,0x13,0x0D}}, {'v', {0x00,0x00,0x11,0x11,0x11,0x0A,0x04}},
    {'w', {0x00,0x00,0x11,0x11,0x15,0x15,0x0A}}, {'x', {0x00,0x00,0x11,0x0A,0x04,0x0A,0x11}},
    {'y', {0x00,0x00,0x11,0x11,0x0F,0x01,0x0E}}, {'z', {0x00,0x00,0x1F,0x02,0x04,0x08,0x1F}},
    {'.', {0x00,0x00,0x00,0x00,0x00,0x0C,0x0C}}, {'-', {0x00,0x00,0x00,0x1F,0x00,0x00,0x00}},
    {',', {0x00,0x00,0x00,0x00,0x0C,0x04,0x08}}, {' ', {0x00,0x00,0x00,0x00,0x00,0x00,0x00}},
};
constexpr uint8_t kMissingGlyph[7] = {0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F};  // a box
constexpr int kGlyphHeight = 7;
constexpr int kAdvance = 6;  // 5 columns and 1 of space

const uint8_t* GlyphRows(char c) {
  for (const Glyph& glyph : kFont) {
    if (glyph.c == c) return glyph.rows;
  }
  return kMissingGlyph;
}

int TextWidth(std::string_view text, int scale) {
  return text.empty() ? 0 : (static_cast<int>(text.size()) * kAdvance - 1) * scale;
}

struct Rgb {
  uint8_t r, g, b;
};
constexpr Rgb kWhite = {255, 255, 255};
constexpr Rgb kBlack = {0, 0, 0};
constexpr Rgb kInk = {40, 40, 40};

// t in [0, 1] -> a viridis-like colour (dark purple, blue, teal, green, yellow).
Rgb ColourAt(float t) {
  constexpr Rgb kStops[] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98},
                            {253, 231, 37}};
  const float x = std::clamp(t, 0.0f, 1.0f) * 4.0f;
  const int i = std::min(static_cast<int>(x), 3);
  const float f = x - static_cast<float>(i);
  auto mix = [f](uint8_t a, uint8_t b) {
    return static_cast<uint8_t>(std::lround(a + (b - a) * f));
  };
  return {mix(kStops[i].r, kStops[i + 1].r), mix(kStops[i].g, kStops[i + 1].g),
          mix(kStops[i].b, kStops[i + 1].b)};
}

// Where things go; every number in pixels.
struct Layout {
  int cell = 0;          // cell side
  int label_scale = 1;   // font scale of the row and column labels
  int label_step = 1;    // label every label_step-th row and column
  bool values = false;   // print the values in the cells
  bool vertical_columns = false;
  int title_y = 0, caption_y = 0;
  int col_caption_x = 0, row_caption_bottom = 0;  // the axis captions
  int grid_x = 0, grid_y = 0;
  int legend_x = 0, legend_height = 0;
  int width = 0, height = 0;
};

constexpr int kMargin = 12;
constexpr int kGap = 6;
constexpr int kTextScale = 2;  // title, axis captions and legend
constexpr int kLegendBar = 18;
constexpr int kLegendBands = 64;
constexpr int kMaxValueCells = 16;

std::string ValueText(float v) { return absl::StrFormat("%.2f", v); }

float MaxValue(const Heatmap& map) {
  float max = 0.0f;
  for (float v : map.values) max = std::max(max, v);
  return max;
}

Layout LayOut(const Heatmap& map, const std::string& max_label) {
  Layout l;
  const int n = std::max(map.rows, map.cols);
  l.values = n <= kMaxValueCells;
  l.cell = l.values ? 56 : std::clamp(720 / n, 2, 56);
  l.label_scale = l.cell >= 16 ? 2 : 1;
  const int label_height = kGlyphHeight * l.label_scale;
  l.label_step = (label_height + 2 + l.cell - 1) / l.cell;
  int row_label_width = 0, col_label_width = 0;
  for (int i = 0; i < map.rows; i += l.label_step) {
    row_label_width = std::max(row_label_width, TextWidth(map.row_labels[i], l.label_scale));
  }
  for (int j = 0; j < map.cols; j += l.label_step) {
    col_label_width = std::max(col_label_width, TextWidth(map.col_labels[j], l.label_scale));
  }
  l.vertical_columns = col_label_width > l.cell - 2;
  const int header = l.vertical_columns ? col_label_width : label_height;
  const int caption = kGlyphHeight * kTextScale;

  l.title_y = kMargin;
  l.caption_y = l.title_y + (map.title.empty() ? 0 : caption + 2 * kGap);
  l.grid_y = l.caption_y + caption + kGap + header + kGap;
  l.grid_x = kMargin + caption + 2 * kGap + row_label_width + kGap;
  const int grid_width = map.cols * l.cell, grid_height = map.rows * l.cell;
  l.legend_x = l.grid_x + grid_width + 3 * kGap;
  l.legend_height = std::max(grid_height, 120);
  const int legend_right = l.legend_x + kLegendBar + kGap +
                           std::max(TextWidth(max_label, kTextScale), TextWidth("0", kTextScale));
  const int row_axis_width = TextWidth(map.row_axis, kTextScale);
  const int col_axis_width = TextWidth(map.col_axis, kTextScale);
  // Centred on the grid, or starting at its edge when longer than the grid.
  l.row_caption_bottom =
      l.grid_y + std::max(grid_height + row_axis_width, 2 * row_axis_width) / 2;
  l.col_caption_x = l.grid_x + std::max(0, (grid_width - col_axis_width) / 2);
  l.width = std::max({legend_right, kMargin + TextWidth(map.title, kTextScale),
                      l.col_caption_x + col_axis_width}) + kMargin;
  l.height = std::max(l.grid_y + l.legend_height, l.row_caption_bottom) + kMargin;
  return l;
}

// What the layout is drawn on.
class Canvas {
 public:
  virtual ~Canvas() = default;
  // `role` names what is drawn: "background", "cell", "legend" (rectangles), "title", "axis",
  // "label", "value", "scale" (text).
  virtual void Fill(int x, int y, int w, int h, Rgb colour, const char* role) = 0;
  // Horizontal text has its top-left corner at (x, y). Vertical text reads bottom to top and
  // has the bottom-left corner of its box at (x, y).
  virtual void Text(int x, int y, std::string_view text, int scale, Rgb colour, bool vertical,
                    const char* role) = 0;
};

void Draw(const Heatmap& map, const Layout& l, const std::string& max_label, float max,
          Canvas& canvas) {
  canvas.Fill(0, 0, l.width, l.height, kWhite, "background");
  canvas.Text(kMargin, l.title_y, map.title, kTextScale, kInk, false, "title");
  canvas.Text(l.col_caption_x, l.caption_y, map.col_axis, kTextScale, kInk, false, "axis");
  canvas.Text(kMargin, l.row_caption_bottom, map.row_axis, kTextScale, kInk, true, "axis");

  for (int i = 0; i < map.rows; ++i) {
    for (int j = 0; j < map.cols; ++j) {
      const float t = max > 0.0f && map.values[i * map.cols + j] > 0.0f
                          ? map.values[i * map.cols + j] / max : 0.0f;
      const int x = l.grid_x + j * l.cell, y = l.grid_y + i * l.cell;
      canvas.Fill(x, y, l.cell, l.cell, ColourAt(t), "cell");
      if (!l.values) continue;
      const std::string text = ValueText(map.values[i * map.cols + j]);
      const int scale = TextWidth(text, 2) <= l.cell - kGap ? 2 : 1;
      canvas.Text(x + (l.cell - TextWidth(text, scale)) / 2,
                  y + (l.cell - kGlyphHeight * scale) / 2, text, scale,
                  t < 0.6f ? kWhite : kBlack, false, "value");
    }
  }
  const int label_height = kGlyphHeight * l.label_scale;
  for (int i = 0; i < map.rows; i += l.label_step) {
    const std::string& label = map.row_labels[i];
    canvas.Text(l.grid_x - kGap - TextWidth(label, l.label_scale),
                l.grid_y + i * l.cell + (l.cell - label_height) / 2, label, l.label_scale, kInk,
                false, "label");
  }
  for (int j = 0; j < map.cols; j += l.label_step) {
    const std::string& label = map.col_labels[j];
    const int x = l.grid_x + j * l.cell;
    if (l.vertical_columns) {
      canvas.Text(x + (l.cell - label_height) / 2, l.grid_y - kGap, label, l.label_scale, kInk,
                  true, "label");
    } else {
      canvas.Text(x + (l.cell - TextWidth(label, l.label_scale)) / 2,
                  l.grid_y - kGap - label_height, label, l.label_scale, kInk, false, "label");
    }
  }

  for (int band = 0; band < kLegendBands; ++band) {  // top = max, bottom = 0
    const int top = l.grid_y + l.legend_height * band / kLegendBands;
    const int bottom = l.grid_y + l.legend_height * (band + 1) / kLegendBands;
    canvas.Fill(l.legend_x, top, kLegendBar, bottom - top,
                ColourAt(1.0f - (band + 0.5f) / kLegendBands), "legend");
  }
  const int legend_text_x = l.legend_x + kLegendBar + kGap;
  canvas.Text(legend_text_x, l.grid_y, max_label, kTextScale, kInk, false, "scale");
  canvas.Text(legend_text_x, l.grid_y + l.legend_height - kGlyphHeight * kTextScale, "0",
              kTextScale, kInk, false, "scale");
}

class RasterCanvas : public Canvas {
 public:
  RasterCanvas(int width, int height)
      : width_(width), height_(height), pixels_(static_cast<size_t>(width) * height * 3, 255) {}

  void Fill(int x, int y, int w, int h, Rgb colour, const char*) override {
    for (int py = std::max(y, 0); py < std::min(y + h, height_); ++py) {
      for (int px = std::max(x, 0); px < std::min(x + w, width_); ++px) {
        uint8_t* p = &pixels_[(static_cast<size_t>(py) * width_ + px) * 3];
        p[0] = colour.r;
        p[1] = colour.g;
        p[2] = colour.b;
      }
    }
  }

  void Text(int x, int y, std::string_view text, int scale, Rgb colour, bool vertical,
            const char*) override {
    for (size_t i = 0; i < text.size(); ++i) {
      const uint8_t* rows = GlyphRows(text[i]);
      for (int gy = 0; gy < kGlyphHeight; ++gy) {
        for (int gx = 0; gx < 5; ++gx) {
          if (!(rows[gy] & (0x10 >> gx))) continue;
          const int along = static_cast<int>(i) * kAdvance + gx;
          if (vertical) {
            Fill(x + gy * scale, y - (along + 1) * scale, scale, scale, colour, "");
          } else {
            Fill(x + along * scale, y + gy * scale, scale, scale, colour, "");
          }
        }
      }
    }
  }

  absl::Status WritePng(const std::string& path) const {
    png_image image;
    std::memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = static_cast<png_uint_32>(width_);
    image.height = static_cast<png_uint_32>(height_);
    image.format = PNG_FORMAT_RGB;
    if (!png_image_write_to_file(&image, path.c_str(), 0, pixels_.data(), 0, nullptr)) {
      return absl::InternalError(absl::StrCat("cannot write ", path, ": ", image.message));
    }
    return absl::OkStatus();
  }

 private:
  int width_, height_;
  std::vector<uint8_t> pixels_;  // RGB, row-major
};

std::string XmlEscaped(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Hex(Rgb c) { return absl::StrFormat("#%02x%02x%02x", c.r, c.g, c.b); }

// Font size 10 x scale: a monospace font's advance (0.6 em) and cap height (about 0.7 em) then
// match the bitmap font's 6 x scale and 7 x scale.
class SvgCanvas : public Canvas {
 public:
  SvgCanvas(int width, int height) {
    svg_ << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\""
         << height << "\" viewBox=\"0 0 " << width << " " << height << "\">\n"
         << "<g font-family=\"DejaVu Sans Mono, monospace\">\n";
  }

  void Fill(int x, int y, int w, int h, Rgb colour, const char* role) override {
    svg_ << "<rect class=\"" << role << "\" x=\"" << x << "\" y=\"" << y << "\" width=\"" << w
         << "\" height=\"" << h << "\" fill=\"" << Hex(colour) << "\"/>\n";
  }

  void Text(int x, int y, std::string_view text, int scale, Rgb colour, bool vertical,
            const char* role) override {
    if (text.empty()) return;
    const int cap = kGlyphHeight * scale;
    svg_ << "<text class=\"" << role << "\" font-size=\"" << 10 * scale << "\" fill=\""
         << Hex(colour) << "\" ";
    if (vertical) {
      svg_ << "transform=\"translate(" << x + cap << " " << y << ") rotate(-90)\"";
    } else {
      svg_ << "x=\"" << x << "\" y=\"" << y + cap << "\"";
    }
    svg_ << ">" << XmlEscaped(text) << "</text>\n";
  }

  std::string Finish() {
    svg_ << "</g>\n</svg>\n";
    return svg_.str();
  }

 private:
  std::ostringstream svg_;
};

absl::Status CheckShape(const Heatmap& map) {
  if (map.rows < 1 || map.cols < 1 ||
      map.values.size() != static_cast<size_t>(map.rows) * map.cols ||
      map.row_labels.size() != static_cast<size_t>(map.rows) ||
      map.col_labels.size() != static_cast<size_t>(map.cols)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "heatmap: %d x %d with %d values, %d row and %d column labels", map.rows, map.cols,
        map.values.size(), map.row_labels.size(), map.col_labels.size()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ImageFormat> ImageFormatOf(const std::string& path) {
  const std::string lower = absl::AsciiStrToLower(path);
  if (absl::EndsWith(lower, ".png")) return ImageFormat::kPng;
  if (absl::EndsWith(lower, ".svg")) return ImageFormat::kSvg;
  return absl::InvalidArgumentError(
      absl::StrCat("\"", path, "\": the image file name must end in .png or .svg"));
}

absl::Status WriteHeatmap(const Heatmap& map, ImageFormat format, const std::string& path) {
  if (absl::Status shape = CheckShape(map); !shape.ok()) return shape;
  const float max = MaxValue(map);
  const std::string max_label = absl::StrFormat("%.3g", max);
  const Layout layout = LayOut(map, max_label);
  if (format == ImageFormat::kPng) {
    RasterCanvas canvas(layout.width, layout.height);
    Draw(map, layout, max_label, max, canvas);
    return canvas.WritePng(path);
  }
  SvgCanvas canvas(layout.width, layout.height);
  Draw(map, layout, max_label, max, canvas);
  std::ofstream file(path, std::ios::binary);
  file << canvas.Finish();
  file.close();
  if (!file) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace attn
