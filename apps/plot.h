#pragma once
// Pictures for people, drawn with OpenCV and written as PNG: the confusion matrix and learning
// curves. Each has a title, axes with ticks and labels, and a legend where it needs one.
// Writing goes through an AtomicFile; a failure throws reel::Error naming the file.
#include <cstdint>
#include <string>
#include <vector>

namespace reel::apps {

// counts[true][predicted], classes x classes. Cells are coloured by the share of their row
// (viridis) and print their count.
void draw_confusion(const std::vector<std::vector<int64_t>>& counts,
                    const std::vector<std::string>& classes, const std::string& title,
                    const std::string& path);

struct Series {
  std::string name;
  std::vector<double> x, y;
};

// Line charts sharing an x axis: one panel per group of series (for example loss; accuracy),
// each with its own y axis and legend.
struct Panel {
  std::string y_label;
  std::vector<Series> series;
};
void draw_curves(const std::vector<Panel>& panels, const std::string& x_label,
                 const std::string& title, const std::string& path);

}  // namespace reel::apps
