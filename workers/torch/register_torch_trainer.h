// Registration of the `torch` trainer kind. No LibTorch header here: cli/main.cc and tests that
// include generated protobuf headers call it (docs/architecture.md, "LibTorch and protobuf").
#ifndef HIPPO_WORKERS_TORCH_REGISTER_TORCH_TRAINER_H_
#define HIPPO_WORKERS_TORCH_REGISTER_TORCH_TRAINER_H_

namespace hippo::workers {

// Makes MakeBuiltinTrainer("torch", device) build a TorchTrainer. Call once from main, before
// any worker starts; calling it again is harmless.
void RegisterTorchTrainer();

// The CUDA devices this process can see (0 without CUDA or in a CPU-only build).
int CudaDeviceCount();

}  // namespace hippo::workers

#endif  // HIPPO_WORKERS_TORCH_REGISTER_TORCH_TRAINER_H_
