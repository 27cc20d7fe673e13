"""`etgpu bench`: one recipe, one process, every peer on the same machine and the same schedule.

    bandwidth.py     device-to-device copy bandwidth (the roofline's denominator)
    roofline.py      bytes a decode step must move (weights once, KV cache at the context)
    schedule.py      the prefill / decode schedule and its clocks (CUDA events or wall clock)
    etgpu_runner.py  the .etgpu path (etgpu runtime) and the .pte path (ExecuTorch runtime)
    torch_runner.py  transformers with a StaticCache, eager and torch.compile(reduce-overhead)
    report.py        ratios, targets, the tables and the JSON
    suite.py         one recipe end to end; cli.py parses the command line
"""
