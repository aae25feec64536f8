# Sourced on the GPU machine (see carry.sh): a .NET runtime from .device/, PyTorch's libtorch, NCCL settings.
set -e
if [ ! -x /tmp/dotnet/dotnet ]; then mkdir -p /tmp/dotnet && tar -xJf .device/dotnet-runtime.tar.xz -C /tmp/dotnet; fi
export DOTNET_ROOT=/tmp/dotnet PATH=/tmp/dotnet:$PATH DOTNET_CLI_TELEMETRY_OPTOUT=1
TORCH_LIB=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
export LD_LIBRARY_PATH=$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
set +e
