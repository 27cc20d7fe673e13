"""EtGpuBackend (ahead of time): lowers one delegated partition to an etgpu payload; its weights go
to ExecuTorch's named data (inside the .pte, or a .ptd), where the C++ backend reads them by key."""

from typing import List

from executorch.exir._serialize._named_data_store import NamedDataStore
from executorch.exir.backend.backend_details import BackendDetails, PreprocessResult
from executorch.exir.backend.compile_spec_schema import CompileSpec
from torch.export import ExportedProgram

from etgpu.lower.graph import lower_program

# Engines upload constants as they are; 64 bytes suits every vector load and the CPU engine's
# in-place reads.
CONSTANT_ALIGNMENT = 64


class EtGpuBackend(BackendDetails):
    @staticmethod
    def preprocess(edge_program: ExportedProgram, compile_specs: List[CompileSpec]) -> PreprocessResult:
        lowered = lower_program(edge_program)
        store = NamedDataStore()
        # Keys are content hashes, so two partitions that share a weight share one entry.
        for key, data in lowered.constants.items():
            store.add_named_data(key, data, alignment=CONSTANT_ALIGNMENT)
        return PreprocessResult(processed_bytes=lowered.payload,
                                data_store_output=store.get_named_data_store_output())
