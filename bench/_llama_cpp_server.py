"""`python -m llama_cpp.server`, after loading the llama.cpp backends the way our server does.

The wheel is built with GGML_BACKEND_DL (hack/llama-wheel.sh): its CPU backends are modules in
llama_cpp/lib that llama.cpp only finds when someone loads them. Our engine does that in
engine/backends.py (the best safe CPU variant); llama_cpp.server does not, so on its own it
would find no backend at all. Loading the same variant first also keeps the comparison fair:
both servers run the same kernels. Arguments are llama_cpp.server's own.
"""

from __future__ import annotations

import logging
import runpy

from sentiric_inference.engine.backends import load_backends

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    load_backends()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
