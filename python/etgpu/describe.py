"""A readable summary of etgpu payloads (what `etgpu inspect` prints), read with the generated
FlatBuffers reader `etgpu.ir` — the same schema the C++ runtime verifies against."""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from etgpu import container
from etgpu.ir.ConstantEncoding import ConstantEncoding
from etgpu.ir.DType import DType
from etgpu.ir.Op import Op
from etgpu.ir.Program import Program, ProgramT
from etgpu.ir.QuantScheme import QuantScheme
from etgpu.ir.Storage import Storage

BACKEND_ID = "EtGpuBackend"


def _enum_names(enum_class) -> Dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


_DTYPE = _enum_names(DType)
_OP = _enum_names(Op)
_STORAGE = _enum_names(Storage)


@dataclass
class Payload:
    label: str                          # where it came from ("model.etgpu", "forward delegate 0")
    data: bytes                         # the FlatBuffer payload
    constants: Optional[Dict[str, bytes]] = None  # the file's keyed constants, if any


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def parse(data: bytes) -> ProgramT:
    if not Program.ProgramBufferHasIdentifier(data, 0):
        raise ValueError("not an etgpu payload (missing FlatBuffer identifier 'ETGP')")
    return ProgramT.InitFromObj(Program.GetRootAs(data, 0))


def format_dim(dim, sym_names: List[str]) -> str:
    """'s0', '2*s0+1', '(s0+1)/2' or a plain size."""
    if dim.sym < 0:
        return str(dim.add)
    expr = sym_names[dim.sym] if dim.sym < len(sym_names) else f"sym{dim.sym}"
    if dim.mul != 1:
        expr = f"{dim.mul}*{expr}"
    if dim.add:
        expr = f"{expr}{dim.add:+d}"
    if dim.div != 1:
        expr = f"({expr})/{dim.div}" if (dim.add or dim.mul != 1) else f"{expr}/{dim.div}"
    return expr


def format_tensor(graph, index: int, sym_names: List[str]) -> str:
    t = graph.tensors[index]
    name = _text(t.name)
    return f"t{index} {name + ' ' if name else ''}{format_type(t, sym_names)}"


def format_type(t, sym_names: List[str]) -> str:
    shape = ", ".join(format_dim(d, sym_names) for d in (t.shape if t.shape is not None else []))
    return f"{_DTYPE.get(t.dtype, t.dtype)}[{shape}]"


def id_list(vector) -> List[int]:
    """The object API gives a numpy array for a vector of scalars when numpy is installed (whose
    truth value is an error), a list otherwise, None when absent."""
    return [] if vector is None else [int(i) for i in vector]


def _scheme_label(w, act: int = 0) -> str:
    if w.scheme == QuantScheme.NvFp4:
        return "nvfp4 (e2m1, e4m3 scales / 16)"
    zeros = ", zeros" if w.zeros >= 0 else ""
    return f"{'8da ' if act else ''}int{w.bits} g{w.group}{zeros}"


def _constants_by_scheme(graph) -> Dict[str, list]:
    """The constant tensors of each weight scheme ("dense" for the rest); a key (a tied weight)
    is listed once."""
    seen, groups = set(), {}
    tensors = graph.tensors or []

    def add(label, index):
        if index < 0 or tensors[index].storage != Storage.Constant:
            return
        key = _text(tensors[index].key) or index  # inline constants have no key
        if key not in seen:
            seen.add(key)
            groups.setdefault(label, []).append(tensors[index])

    for ins in graph.instructions or []:
        if ins.opType in (Op.QuantizedLinear, Op.QuantizedEmbedding):
            w = ins.op.w
            label = _scheme_label(w, getattr(ins.op, "act", 0))
            for index in (w.codes, w.scales, w.zeros):
                add(label, index)
    for index in range(len(tensors)):
        add("dense", index)
    return groups


def weight_bytes_by_scheme(graph) -> Dict[str, int]:
    """Constant bytes per weight scheme as the engines hold them (decoded)."""
    return {label: sum(t.nbytes for t in ts) for label, ts in _constants_by_scheme(graph).items()}


def _stored_bytes(tensor, constants: Optional[Dict[str, bytes]]) -> Optional[int]:
    """The bytes a file holds for a constant (encoded ones are smaller than `nbytes`): its inline
    data, its keyed bytes, or `nbytes` for a raw one whose keyed bytes are not at hand; None for an
    encoded one whose bytes are not at hand (a bare payload)."""
    if tensor.data is not None:
        return len(tensor.data)
    key = _text(tensor.key)
    if constants is not None and key in constants:
        return len(constants[key])
    return tensor.nbytes if tensor.encoding == ConstantEncoding.Raw else None


def _scheme_bytes(tensors, constants) -> str:
    """'1234', or '1000 (decoded 1234)' where an encoding made the stored bytes smaller."""
    decoded = sum(t.nbytes for t in tensors)
    stored = [_stored_bytes(t, constants) for t in tensors]
    if None in stored:
        return f"{decoded} decoded (the encoded constants' stored bytes are not in this file)"
    total = sum(stored)
    return f"{total}" + (f" (decoded {decoded})" if total < decoded else "")


def describe(payload: Payload) -> str:
    program = parse(payload.data)
    graph = program.graph
    if graph is None:
        raise ValueError("payload has no graph")
    syms = graph.symDims or []
    sym_names = [_text(s.name) or f"sym{i}" for i, s in enumerate(syms)]
    tensors = graph.tensors or []
    lines = [f"== {payload.label}: etgpu IR v{program.version}, {len(payload.data)} payload bytes"]
    lines.append("symbols: " + (", ".join(f"{n} in [{s.min}, {s.max}]" for n, s in zip(sym_names, syms))
                                or "none (static shapes)"))
    # The object API gives numpy arrays for int vectors when numpy is present (no truth value).
    for title, ids in (("inputs", id_list(graph.inputs)), ("outputs", id_list(graph.outputs))):
        lines.append(f"{title}:")
        lines.extend(f"  {format_tensor(graph, i, sym_names)}" for i in ids)
    ops = Counter(_OP.get(ins.opType, str(ins.opType)) for ins in (graph.instructions or []))
    lines.append(f"instructions: {sum(ops.values())}")
    lines.extend(f"  {name:<12} {count}" for name, count in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))
    storage = Counter(_STORAGE.get(t.storage, str(t.storage)) for t in tensors)
    lines.append(f"tensors: {len(tensors)} (" + ", ".join(f"{k} {v}" for k, v in sorted(storage.items())) + ")")
    constant_bytes = sum(t.nbytes for t in tensors if t.storage == Storage.Constant)
    mutable_bytes = sum(t.nbytes for t in tensors if t.storage == Storage.Mutable)
    lines.append(f"arena bytes: {graph.arenaBytes}")
    lines.append(f"constant bytes: {constant_bytes}" + (f" ({len(payload.constants)} keyed constants in the file, "
                 f"{sum(len(v) for v in payload.constants.values())} bytes)" if payload.constants is not None else ""))
    lines.append(f"mutable state bytes: {mutable_bytes}")
    # Grouped by shape: an LLM's KV cache shows full-length and sliding-window (ring) layers apart.
    mutable = Counter(format_type(t, sym_names) for t in tensors if t.storage == Storage.Mutable)
    lines.extend(f"  {count} x {shape}" for shape, count in sorted(mutable.items()))
    lines.append("weight bytes by scheme (stored; decoded where that is larger):")
    lines.extend(f"  {label:<32} {_scheme_bytes(ts, payload.constants)}"
                 for label, ts in sorted(_constants_by_scheme(graph).items()))
    return "\n".join(lines)


def pte_payloads(data: bytes, label: str) -> List[Payload]:
    """Every EtGpuBackend delegate payload in a .pte (needs executorch's Python deserializer)."""
    try:
        from executorch.exir._serialize._program import deserialize_pte_binary
    except ImportError as e:
        raise RuntimeError(f"reading a .pte needs the executorch Python package ({e})") from e
    pte = deserialize_pte_binary(data)
    program, named = pte.program, pte.named_data
    # The named data (every delegate's constants, in the .pte): what the stored sizes come from.
    constants = ({key: named.buffers[entry.buffer_index] for key, entry in named.pte_data.items()}
                 if named is not None else None)
    found = []
    for plan in program.execution_plan:
        for index, delegate in enumerate(plan.delegates):
            if delegate.id != BACKEND_ID:
                continue
            # Segments are folded back into backend_delegate_data by the deserializer.
            blob = program.backend_delegate_data[delegate.processed.index].data
            found.append(Payload(f"{label} method '{plan.name}' delegate {index}", bytes(blob), constants))
    return found


def read_payloads(path) -> List[Payload]:
    """The payloads in a .etgpu file, a .pte file, or a bare payload."""
    path = Path(path)
    data = path.read_bytes()
    if data[:len(container.MAGIC)] == container.MAGIC:
        payload, constants = container.unpack(data)
        return [Payload(path.name, payload, constants)]
    if Program.ProgramBufferHasIdentifier(data, 0):
        return [Payload(path.name, data)]
    if path.suffix == ".pte":
        return pte_payloads(data, path.name)
    raise ValueError(f"{path}: neither an .etgpu file, a .pte file nor an etgpu payload")
