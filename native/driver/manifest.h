// A model for the driver, loaded from a driver manifest (engine/manifest.ts: `m1 driver-manifest`): the engine's
// native spec of every layer with each weight given as a place in a file (or as seeded random values), so the
// driver needs no config or checkpoint logic of its own. Weights are read into cache-line aligned memory.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layer.h"

namespace m1 {

struct DriverModel {
  DecoderModel model{};
  int64_t vocab = 0, hidden = 0;
  int64_t eos = -1;  // -1: none
  struct Layer {
    DecoderLayerParams params{};
    LightningParams lightning{};
    SoftmaxParams softmax{};
    std::vector<ExpertView> experts;
    std::vector<const ExpertView*> expert_ptrs;
    std::vector<float> slopes;
  };
  std::vector<std::unique_ptr<Layer>> layers;
  std::vector<const DecoderLayerParams*> layer_ptrs;
  std::vector<std::shared_ptr<void>> buffers;  // every weight's memory
};

// Throws std::runtime_error naming the manifest file and the field (e.g. "layers[3].experts[2].w1.offset").
std::unique_ptr<DriverModel> load_manifest(const std::string& path);

}  // namespace m1
