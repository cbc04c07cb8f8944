// Model files: writing, reading the root, loading a network's group.
#include "io/model/model_file.h"

#include <algorithm>
#include <iterator>

#include "io/h5/h5.h"
#include "io/state/state_file.h"
#include "src/core/error.h"

#ifndef LOCKSTEP_VERSION
#error "LOCKSTEP_VERSION must be defined by the build (io/CMakeLists.txt)"
#endif

namespace lockstep::io {

const char* library_version() { return LOCKSTEP_VERSION; }

bool ModelFileInfo::has_group(const std::string& name) const {
  return std::find(groups.begin(), groups.end(), name) != groups.end();
}

bool is_buffer_entry(const std::string& dotted_name) {
  static constexpr const char* kBufferNames[] = {"running_mean", "running_var", "num_batches_tracked",
                                                 "vocabulary"};  // a character model's code points
  const std::string leaf = dotted_name.substr(dotted_name.rfind('.') + 1);
  return std::find(std::begin(kBufferNames), std::end(kBufferNames), leaf) != std::end(kBufferNames);
}

void write_model_file(const std::filesystem::path& path, const std::string& kind, const std::string& config,
                      const std::vector<std::pair<std::string, const nn::Module*>>& models) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    h5::File file(tmp, h5::Access::kTruncate);
    h5::Group root = file.root();
    root.set_attribute("format_version", kModelFileFormatVersion);
    root.set_attribute("kind", kind);
    root.set_attribute("config", config);
    for (const auto& [name, model] : models) write_state_dict(root.create_group(name), model->state_dict());
    file.flush();
  }
  std::filesystem::rename(tmp, path);
}

ModelFileInfo read_model_file_info(const std::filesystem::path& path) {
  const h5::File file(path, h5::Access::kRead);
  const h5::Group root = file.root();
  if (!root.has_attribute("kind") || !root.has_attribute("config")) {
    throw IoError(str_cat("expected a model file written by `lockstep train` (attributes kind and config at "
                          "its root), but '",
                          path.string(), "' has none"),
                  path.string(), "/");
  }
  ModelFileInfo info;
  info.kind = root.attribute_string("kind");
  info.config = root.attribute_string("config");
  info.format_version = root.has_attribute("format_version") ? root.attribute_int("format_version") : 1;
  if (info.format_version > kModelFileFormatVersion) {
    throw IoError(str_cat("'", path.string(), "' is a model file of format version ", info.format_version,
                          ", but this Lockstep (", library_version(), ") reads up to version ",
                          kModelFileFormatVersion),
                  path.string(), "/");
  }
  info.groups = root.children();
  return info;
}

void load_model_group(const std::filesystem::path& path, const std::string& group, nn::Module& model) {
  const h5::File file(path, h5::Access::kRead);
  model.load_state_dict(read_state_dict(file.root().group(group)));
}

}  // namespace lockstep::io
