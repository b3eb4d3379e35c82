#pragma once
// Dataset indexes: which videos, with which labels. Parsing errors throw reel::Error naming the
// file (and the line, for list files). Missing or unreadable videos are not checked here: the
// loader and `reel prepare` report them by name under the --on-bad-video policy.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace reel::data {

class Store;

struct VideoItem {
  std::string path;   // a video file or a folder of frames (empty for a store's items)
  int64_t label = 0;  // index into Dataset::classes
  // A segment of the video in seconds (ActivityNet's annotations): clips are sampled from the
  // frames in [start, end) only. end < 0: the whole video.
  double start = 0.0, end = -1.0;
};

struct Dataset {
  std::vector<std::string> classes;
  std::vector<VideoItem> items;
  // What the index left out or changed, one line each, for the caller to report (ActivityNet:
  // segments cut at the video's duration).
  std::vector<std::string> notes;
  // When set, frames come from this pre-decoded store (items[i] is the store's video i).
  std::shared_ptr<const Store> store;

  size_t size() const { return items.size(); }
};

enum class Layout { UCF101, Kinetics, Folder, CSV, ActivityNet };
// "ucf101", "kinetics", "folder", "csv", "activitynet"; anything else throws.
Layout parse_layout(const std::string& name);

struct DatasetOptions {
  Layout layout = Layout::Folder;
  std::string root;  // the folder that holds the class folders
  // UCF101: the folder with classInd.txt and the split lists (default: root, then
  // root/ucfTrainTestlist, then root/../ucfTrainTestlist). Kinetics and csv: the CSV file
  // (default for csv: root/data.csv; for Kinetics: the only *.csv in root). ActivityNet: the
  // annotation JSON (default: the only *.json in root).
  std::string list;
  int split = 1;  // UCF101: trainlist0N / testlist0N
  // UCF101: trainlist or testlist; Kinetics: rows whose split is "train" or "val"; ActivityNet:
  // the "training" or the "validation" subset.
  bool train = true;
  // Kinetics: keep rows whose split column equals this; empty: "train" or "val" from `train`;
  // "all": every row.
  std::string kinetics_split;
};

Dataset load_dataset(const DatasetOptions& options);

// UCF101: root/ClassName/v_*.avi with classInd.txt ("1 ApplyEyeMakeup"), trainlist0N.txt
// ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1") and testlist0N.txt (path only). Class
// folders and file names are matched without regard to case.
Dataset load_ucf101(const std::string& root, const std::string& list_dir, int split, bool train);
// Kinetics: CSV rows label,youtube_id,time_start,time_end,split with a header; clips at
// root/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4 (a label's spaces may be underscores in
// the folder name). Classes are the sorted labels of the whole CSV.
Dataset load_kinetics(const std::string& root, const std::string& csv, const std::string& split);
// ActivityNet 1.3: the annotation JSON's "database" maps each video id to "subset"
// ("training", "validation" or "testing"), "duration" (seconds) and "annotations": a list of
// {"segment": [start, end] in seconds, "label": name}. One item per annotated segment of the
// videos of `subset`. Classes are the sorted labels of the training subset; a validation label
// that no training video has throws, naming it and the video. A video is found as
// root/v_<id>.<ext> or root/<id>.<ext> (any video container: mp4, mkv, webm, avi, ...) or a
// frame folder of either name; a video found nowhere gets the path root/v_<id>.* (the trainer
// names the missing ones in one summary and goes on). A malformed entry throws, naming the file,
// the video id and the key; a segment that ends before it starts throws too; a segment past
// the stated duration is cut at it (a note), and one that starts at or past it is dropped (a
// note).
Dataset load_activitynet(const std::string& root, const std::string& json,
                         const std::string& subset);
// root/ClassName/<video file or frame folder>, classes sorted by name. An empty class folder
// throws, naming it.
Dataset load_folder(const std::string& root);
// A CSV of path,label (an optional header "path,label"); relative paths are taken from root.
// Classes are the sorted distinct labels.
Dataset load_csv(const std::string& root, const std::string& csv);

}  // namespace reel::data
