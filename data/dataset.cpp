#include "reel/data/dataset.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "reel/core/error.h"
#include "reel/data/video.h"

namespace fs = std::filesystem;

namespace reel::data {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// The lines of a text file, trimmed (CRLF files included).
std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  REEL_CHECK(in.good(), "cannot open list file '" << path << "'");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(trim(line));
  return lines;
}

// One CSV record: commas split fields, double quotes protect commas ("" is a quote).
bool split_csv(const std::string& line, std::vector<std::string>& fields) {
  fields.assign(1, "");
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  for (auto& f : fields) f = trim(f);
  return !quoted;
}

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  size_t pos = 0;
  try {
    out = std::stoll(s, &pos);
  } catch (...) {
    return false;
  }
  return pos == s.size();
}

// Finds a file or folder name inside a folder without regard to case (UCF101's lists say
// HandStandPushups where the folder is HandstandPushups). Caches each folder's listing.
class CaseResolver {
 public:
  // root/rel with each component matched case-insensitively when the exact one is missing;
  // root/rel unchanged when nothing matches (the loader then reports the missing file).
  std::string resolve(const fs::path& root, const std::string& rel) {
    fs::path exact = root / rel;
    std::error_code ec;
    if (fs::exists(exact, ec)) return exact.string();
    fs::path cur = root;
    for (const auto& part : fs::path(rel)) {
      const std::string name = part.string();
      if (name.empty() || name == ".") continue;
      fs::path next = cur / name;
      if (!fs::exists(next, ec)) {
        const auto& listing = list(cur);
        auto it = listing.find(lower(name));
        if (it == listing.end()) return exact.string();
        next = cur / it->second;
      }
      cur = next;
    }
    return cur.string();
  }

  const std::map<std::string, std::string>& list(const fs::path& dir) {
    auto it = cache_.find(dir.string());
    if (it != cache_.end()) return it->second;
    std::map<std::string, std::string> names;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
      names.emplace(lower(e.path().filename().string()), e.path().filename().string());
    return cache_.emplace(dir.string(), std::move(names)).first->second;
  }

 private:
  std::map<std::string, std::map<std::string, std::string>> cache_;
};

bool is_video_name(const fs::path& p) {
  static const std::set<std::string> exts = {".avi", ".mp4",  ".mkv", ".webm", ".mov",
                                             ".mpg", ".mpeg", ".m4v", ".flv",  ".wmv",
                                             ".ogv", ".3gp",  ".ts",  ".gif"};
  return exts.count(lower(p.extension().string())) > 0;
}

std::string find_ucf_lists(const std::string& root, const std::string& list_dir) {
  if (!list_dir.empty()) return list_dir;
  for (const fs::path& d : {fs::path(root), fs::path(root) / "ucfTrainTestlist",
                            fs::path(root).parent_path() / "ucfTrainTestlist"}) {
    std::error_code ec;
    if (fs::exists(d / "classInd.txt", ec)) return d.string();
  }
  throw Error("UCF101 '" + root + "': no classInd.txt in it, in ucfTrainTestlist/ or beside it");
}

// The one file with extension ext in root (the index of a Kinetics or ActivityNet root).
std::string only_file(const std::string& root, const std::string& ext, const std::string& what) {
  std::error_code ec;
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (lower(e.path().extension().string()) == ext) found.push_back(e.path().string());
  REEL_CHECK(found.size() == 1, what << " root '" << root << "': expected one " << ext
                                     << " in it, found " << found.size()
                                     << " (name it with --list)");
  return found[0];
}

}  // namespace

Layout parse_layout(const std::string& name) {
  const std::string n = lower(name);
  if (n == "ucf101") return Layout::UCF101;
  if (n == "kinetics") return Layout::Kinetics;
  if (n == "folder") return Layout::Folder;
  if (n == "csv") return Layout::CSV;
  if (n == "activitynet") return Layout::ActivityNet;
  throw Error("unknown dataset layout '" + name +
              "' (expected ucf101, kinetics, folder, csv or activitynet)");
}

Dataset load_ucf101(const std::string& root, const std::string& list_dir, int split, bool train) {
  std::error_code ec;
  REEL_CHECK(fs::is_directory(root, ec), "UCF101 root '" << root << "': no such folder");
  REEL_CHECK(split >= 1 && split <= 99, "UCF101: split must be 1 to 99, got " << split);
  const std::string dir = find_ucf_lists(root, list_dir);
  Dataset ds;
  std::map<std::string, int64_t> by_name;  // lower-case class name -> index
  const std::string ind = (fs::path(dir) / "classInd.txt").string();
  const auto ind_lines = read_lines(ind);
  for (size_t i = 0; i < ind_lines.size(); ++i) {
    const std::string& line = ind_lines[i];
    if (line.empty()) continue;
    const size_t sp = line.find_first_of(" \t");
    int64_t id = 0;
    REEL_CHECK(sp != std::string::npos && parse_int(line.substr(0, sp), id),
               ind << ":" << i + 1 << ": expected '<index> <ClassName>', got '" << line << "'");
    const std::string name = trim(line.substr(sp + 1));
    REEL_CHECK(id == static_cast<int64_t>(ds.classes.size()) + 1 && !name.empty(),
               ind << ":" << i + 1 << ": expected class index " << ds.classes.size() + 1
                   << " with a name, got '" << line << "'");
    REEL_CHECK(by_name.emplace(lower(name), id - 1).second,
               ind << ":" << i + 1 << ": class '" << name << "' listed twice");
    ds.classes.push_back(name);
  }
  REEL_CHECK(!ds.classes.empty(), ind << ": lists no class");

  char list_name[32];
  std::snprintf(list_name, sizeof list_name, "%s%02d.txt", train ? "trainlist" : "testlist", split);
  const std::string list = (fs::path(dir) / list_name).string();
  const auto lines = read_lines(list);
  CaseResolver resolver;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (line.empty()) continue;
    const size_t sp = line.find_first_of(" \t");
    const std::string rel = sp == std::string::npos ? line : line.substr(0, sp);
    const std::string rest = sp == std::string::npos ? "" : trim(line.substr(sp + 1));
    const size_t slash = rel.find('/');
    REEL_CHECK(slash != std::string::npos && slash > 0 && slash + 1 < rel.size(),
               list << ":" << i + 1 << ": expected 'ClassName/video.avi"
                    << (train ? " <label>" : "") << "', got '" << line << "'");
    const std::string cls = rel.substr(0, slash);
    auto it = by_name.find(lower(cls));
    REEL_CHECK(it != by_name.end(),
               list << ":" << i + 1 << ": unknown class '" << cls << "' (not in " << ind << ")");
    int64_t label = it->second;
    if (!rest.empty()) {
      int64_t given = 0;
      REEL_CHECK(parse_int(rest, given),
                 list << ":" << i + 1 << ": label '" << rest << "' is not a number");
      REEL_CHECK(
          given >= 1 && given <= static_cast<int64_t>(ds.classes.size()),
          list << ":" << i + 1 << ": label " << given << " is not in 1.." << ds.classes.size());
      REEL_CHECK(given - 1 == label, list << ":" << i + 1 << ": label " << given << " ("
                                          << ds.classes[given - 1] << ") disagrees with folder '"
                                          << cls << "'");
    } else {
      REEL_CHECK(!train, list << ":" << i + 1 << ": missing the label after the path");
    }
    ds.items.push_back({resolver.resolve(root, rel), label});
  }
  REEL_CHECK(!ds.items.empty(), list << ": lists no video");
  return ds;
}

Dataset load_kinetics(const std::string& root, const std::string& csv, const std::string& split) {
  std::error_code ec;
  REEL_CHECK(fs::is_directory(root, ec), "Kinetics root '" << root << "': no such folder");
  const auto lines = read_lines(csv);
  REEL_CHECK(!lines.empty(), csv << ": is empty");
  std::vector<std::string> f;
  REEL_CHECK(split_csv(lines[0], f), csv << ":1: unbalanced quotes");
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < f.size(); ++i)
    REEL_CHECK(col.emplace(lower(f[i]), i).second,
               csv << ":1: column '" << f[i] << "' appears twice in the header");
  const size_t header_fields = f.size();
  for (const char* need : {"label", "youtube_id", "time_start", "time_end"})
    REEL_CHECK(col.count(need), csv << ":1: header lacks column '" << need
                                    << "' (expected label,youtube_id,time_start,time_end,split)");
  const bool has_split = col.count("split") > 0;
  struct Row {
    std::string label, path;
  };
  std::vector<Row> rows;
  std::set<std::string> labels;
  CaseResolver resolver;
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    REEL_CHECK(split_csv(lines[i], f) && f.size() >= header_fields,
               csv << ":" << i + 1 << ": expected " << header_fields << " fields, got '" << lines[i]
                   << "'");
    const std::string& label = f[col["label"]];
    int64_t t0 = 0, t1 = 0;
    REEL_CHECK(!label.empty() && !f[col["youtube_id"]].empty() &&
                   parse_int(f[col["time_start"]], t0) && parse_int(f[col["time_end"]], t1) &&
                   t0 >= 0 && t1 >= t0,
               csv << ":" << i + 1 << ": expected label,youtube_id,<start>,<end>, got '" << lines[i]
                   << "'");
    labels.insert(label);
    if (split != "all" && has_split && f[col["split"]] != split) continue;
    char name[64];
    std::snprintf(name, sizeof name, "_%06lld_%06lld.mp4", static_cast<long long>(t0),
                  static_cast<long long>(t1));
    std::string folder = label;
    if (!fs::exists(fs::path(root) / folder, ec)) {
      std::string under = label;
      std::replace(under.begin(), under.end(), ' ', '_');
      if (fs::exists(fs::path(root) / under, ec)) folder = under;
    }
    rows.push_back({label, resolver.resolve(root, folder + "/" + f[col["youtube_id"]] + name)});
  }
  Dataset ds;
  ds.classes.assign(labels.begin(), labels.end());
  for (const Row& r : rows) {
    const auto it = std::lower_bound(ds.classes.begin(), ds.classes.end(), r.label);
    ds.items.push_back({r.path, it - ds.classes.begin()});
  }
  REEL_CHECK(!ds.items.empty(), csv << ": no row with split '" << split << "'");
  return ds;
}

Dataset load_folder(const std::string& root) {
  std::error_code ec;
  REEL_CHECK(fs::is_directory(root, ec), "dataset folder '" << root << "': no such folder");
  std::vector<std::string> classes;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && !name.empty() && name[0] != '.') classes.push_back(name);
  }
  REEL_CHECK(!classes.empty(), "dataset folder '" << root << "': holds no class folder");
  std::sort(classes.begin(), classes.end());
  Dataset ds;
  ds.classes = classes;
  for (size_t c = 0; c < classes.size(); ++c) {
    const fs::path dir = fs::path(root) / classes[c];
    std::vector<std::string> videos;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.empty() || name[0] == '.') continue;
      if (e.is_directory() || (e.is_regular_file() && is_video_name(e.path())))
        videos.push_back(e.path().string());
    }
    REEL_CHECK(!videos.empty(),
               "class folder '" << dir.string() << "': is empty (no video or frame folder)");
    std::sort(videos.begin(), videos.end(), natural_less);
    for (auto& v : videos) ds.items.push_back({std::move(v), static_cast<int64_t>(c)});
  }
  return ds;
}

Dataset load_csv(const std::string& root, const std::string& csv) {
  const auto lines = read_lines(csv);
  std::vector<std::pair<std::string, std::string>> rows;
  std::vector<std::string> f;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    REEL_CHECK(split_csv(lines[i], f) && f.size() == 2 && !f[0].empty() && !f[1].empty(),
               csv << ":" << i + 1 << ": expected 'path,label', got '" << lines[i] << "'");
    if (rows.empty() && lower(f[0]) == "path" && lower(f[1]) == "label") continue;
    const fs::path p(f[0]);
    rows.emplace_back(p.is_absolute() ? p.string() : (fs::path(root) / p).string(), f[1]);
  }
  REEL_CHECK(!rows.empty(), csv << ": lists no video");
  std::set<std::string> labels;
  for (const auto& r : rows) labels.insert(r.second);
  Dataset ds;
  ds.classes.assign(labels.begin(), labels.end());
  for (const auto& r : rows) {
    const auto it = std::lower_bound(ds.classes.begin(), ds.classes.end(), r.second);
    ds.items.push_back({r.first, it - ds.classes.begin()});
  }
  return ds;
}

Dataset load_activitynet(const std::string& root, const std::string& path,
                         const std::string& subset) {
  using nlohmann::json;
  std::error_code ec;
  REEL_CHECK(fs::is_directory(root, ec), "ActivityNet root '" << root << "': no such folder");
  REEL_CHECK(subset == "training" || subset == "validation",
             "ActivityNet: unknown subset '" << subset << "' (expected training or validation)");
  json j;
  {
    std::ifstream in(path);
    REEL_CHECK(in, path << ": cannot open the annotation file");
    try {
      j = json::parse(in);
    } catch (const json::exception& e) {
      throw Error(path + ": not valid JSON (" + e.what() + ")");
    }
  }
  REEL_CHECK(j.is_object() && j.contains("database") && j["database"].is_object(),
             path << ": expected an object with a \"database\" object (ActivityNet 1.3)");
  struct Segment {
    std::string id, label;
    double start, end;
  };
  std::vector<Segment> segments;
  std::set<std::string> train_labels;
  std::vector<std::string> cut, dropped;
  for (const auto& [id, v] : j["database"].items()) {
    const std::string where = path + ": video \"" + id + "\"";
    REEL_CHECK(v.is_object(), where << ": expected an object, got " << v.type_name());
    REEL_CHECK(v.contains("subset") && v["subset"].is_string(),
               where << ": \"subset\" must be a string (training, validation or testing)");
    const std::string sub = v["subset"].get<std::string>();
    if (sub == "testing") continue;  // no annotations
    REEL_CHECK(
        v.contains("duration") && v["duration"].is_number() && v["duration"].get<double>() > 0.0,
        where << ": \"duration\" must be a positive number of seconds");
    const double duration = v["duration"].get<double>();
    REEL_CHECK(v.contains("annotations") && v["annotations"].is_array(),
               where << ": \"annotations\" must be a list of {\"segment\", \"label\"}");
    const json& anns = v["annotations"];
    for (size_t a = 0; a < anns.size(); ++a) {
      const json& ann = anns[a];
      const std::string at = where + ": \"annotations\"[" + std::to_string(a) + "]";
      REEL_CHECK(ann.is_object() && ann.contains("label") && ann["label"].is_string() &&
                     !ann["label"].get<std::string>().empty(),
                 at << ": \"label\" must be a non-empty string");
      REEL_CHECK(ann.contains("segment") && ann["segment"].is_array() &&
                     ann["segment"].size() == 2 && ann["segment"][0].is_number() &&
                     ann["segment"][1].is_number(),
                 at << ": \"segment\" must be [start, end] in seconds, got "
                    << (ann.contains("segment") ? ann["segment"].dump() : std::string("nothing")));
      Segment s{id, ann["label"].get<std::string>(), ann["segment"][0].get<double>(),
                ann["segment"][1].get<double>()};
      REEL_CHECK(s.start >= 0.0 && s.end > s.start,
                 at << ": the segment [" << s.start << ", " << s.end
                    << "] ends before it starts (or starts before 0)");
      if (sub == "training") train_labels.insert(s.label);
      if (sub != subset) continue;
      if (s.start >= duration) {
        dropped.push_back(id);
        continue;
      }
      if (s.end > duration) {
        cut.push_back(id);
        s.end = duration;
      }
      segments.push_back(s);
    }
  }
  REEL_CHECK(!train_labels.empty(), path << ": no training video has an annotation");
  Dataset ds;
  ds.classes.assign(train_labels.begin(), train_labels.end());
  // The videos: one listing of root, then v_<id>.<ext>, <id>.<ext>, or a frame folder so named.
  std::map<std::string, std::string> by_stem;  // file stem or folder name -> path
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const fs::path& p = e.path();
    if (e.is_directory(ec))
      by_stem.emplace(p.filename().string(), p.string());
    else if (is_video_name(p))
      by_stem.emplace(p.stem().string(), p.string());
  }
  for (const Segment& s : segments) {
    const auto c = std::lower_bound(ds.classes.begin(), ds.classes.end(), s.label);
    REEL_CHECK(c != ds.classes.end() && *c == s.label, path << ": " << subset << " video \"" << s.id
                                                            << "\" has the label \"" << s.label
                                                            << "\", which no training video has");
    VideoItem item;
    auto f = by_stem.find("v_" + s.id);
    if (f == by_stem.end()) f = by_stem.find(s.id);
    item.path = f != by_stem.end() ? f->second : (fs::path(root) / ("v_" + s.id + ".*")).string();
    item.label = c - ds.classes.begin();
    item.start = s.start;
    item.end = s.end;
    ds.items.push_back(item);
  }
  auto note = [&](const std::vector<std::string>& ids, const std::string& what) {
    if (ids.empty()) return;
    std::string m = path + ": " + what + ": " + std::to_string(ids.size()) +
                    (ids.size() == 1 ? " segment (" : " segments (") + ids[0];
    if (ids.size() > 1) m += ", " + ids[1];
    ds.notes.push_back(m + (ids.size() > 2 ? ", ...)" : ")"));
  };
  note(cut, "cut at the video's duration");
  note(dropped, "left out, starting at or past the video's duration");
  return ds;
}

Dataset load_dataset(const DatasetOptions& o) {
  switch (o.layout) {
    case Layout::UCF101:
      return load_ucf101(o.root, o.list, o.split, o.train);
    case Layout::Kinetics: {
      const std::string csv = o.list.empty() ? only_file(o.root, ".csv", "Kinetics") : o.list;
      const std::string split =
          o.kinetics_split.empty() ? (o.train ? "train" : "val") : o.kinetics_split;
      return load_kinetics(o.root, csv, split);
    }
    case Layout::Folder:
      return load_folder(o.root);
    case Layout::CSV:
      return load_csv(o.root, o.list.empty() ? (fs::path(o.root) / "data.csv").string() : o.list);
    case Layout::ActivityNet:
      return load_activitynet(o.root,
                              o.list.empty() ? only_file(o.root, ".json", "ActivityNet") : o.list,
                              o.train ? "training" : "validation");
  }
  throw Error("load_dataset: unknown layout");
}

}  // namespace reel::data
