"""Hugging Face transformers as the oracle for shareprefill's forward pass.

Writes reference logits that `shareprefill bench accuracy --oracle DIR`
compares with our engine. Two kinds of cases:

  random  For each --shapes entry (Llama-3.2-1B, an MHA model with head_dim 64,
          Llama-3-8B, Qwen2.5-7B or Mistral-7B shapes; --layers layers; random
          weights, seeded), the model is saved once as bf16 safetensors into
          OUT/models/<shape>/, and for each of --lens a seeded random prompt is
          run in float32 (the reference) and in float16 (the control: transformers'
          own half-precision error on the same inputs and the same bf16 weights).
  model   With --model DIR --heldout FILE: the trained model (bench-lm-8k) on
          the first n tokens of its held-out Go files (FILE is the held-out file
          of `shareprefill bench accuracy --write-heldout`; every document is
          BOS text EOS), for each of --model-lens, in float32 (with the mean NLL
          over every prediction) and float16.

Each case OUT/<case>/ holds case.json (the model directory relative to the
case, the positions whose logits are stored, transformers' float16 error
against float32 and the float32 NLL), ids.json and ref_logits.f32: float32
logits [len(positions), vocab], row-major, little-endian. Positions: every
position up to --positions tokens, else --positions evenly spaced ones with
the last. Relative error = ||x - ref|| / ||ref|| over the stored positions.

With --ours BIN (our prebuilt binary, e.g. bin/shareprefill) the script then
runs `BIN bench accuracy --oracle OUT` itself, writing --json/--md: the whole
comparison in one command, with no Go toolchain on the machine.

Usage: python3 bench/peers/hf_oracle.py --out DIR [--shapes llama3.2-1b,mha-d64]
       [--lens 64,256,1024,4096,8192] [--layers 2] [--positions 128]
       [--model DIR --heldout FILE --model-lens 512,2048,8192,16384]
       [--ours bin/shareprefill --json oracle.json --md oracle.md]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
import transformers


SHAPES = {
    "llama3.2-1b": dict(
        cls="LlamaForCausalLM", cfg="LlamaConfig",
        kw=dict(hidden_size=2048, intermediate_size=8192, num_attention_heads=32, num_key_value_heads=8, head_dim=64,
                vocab_size=128256, max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0,
                rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192},
                tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001)),
    "mha-d64": dict(
        cls="LlamaForCausalLM", cfg="LlamaConfig",
        kw=dict(hidden_size=1024, intermediate_size=2816, num_attention_heads=16, num_key_value_heads=16, head_dim=64,
                vocab_size=32000, max_position_embeddings=16384, rms_norm_eps=1e-5, rope_theta=10000.0,
                tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)),
    "llama3-8b": dict(
        cls="LlamaForCausalLM", cfg="LlamaConfig",
        kw=dict(hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8,
                vocab_size=128256, max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0,
                rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192},
                tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001)),
    "qwen2.5-7b": dict(
        cls="Qwen2ForCausalLM", cfg="Qwen2Config",
        kw=dict(hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
                vocab_size=152064, max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
                tie_word_embeddings=False, use_sliding_window=False, bos_token_id=151643, eos_token_id=151645)),
    "mistral-7b": dict(
        cls="MistralForCausalLM", cfg="MistralConfig",
        kw=dict(hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8,
                vocab_size=32768, max_position_embeddings=32768, rms_norm_eps=1e-5, rope_theta=1000000.0,
                sliding_window=None, tie_word_embeddings=False, head_dim=128, bos_token_id=1, eos_token_id=2)),
}


def parse_lens(text):
    out = []
    for f in text.split(","):
        f = f.strip().lower()
        if f:
            mul = 1024 if f.endswith("k") else 1
            out.append(int(f.rstrip("k")) * mul)
    return out


def positions_for(n, p):
    if n <= p:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, p)})


@torch.no_grad()
def run(model, ids, pos, nll):
    """Logits at pos (float32, on the CPU) and, if nll, the mean NLL of every prediction."""
    out = model.model(ids.cuda()).last_hidden_state[0]
    sel = model.lm_head(out[torch.tensor(pos, device=out.device)]).float().cpu()
    mean_nll = None
    if nll:
        tot, n = 0.0, ids.shape[1] - 1
        tgt = ids[0, 1:].cuda()
        for s in range(0, n, 1024):
            lg = model.lm_head(out[s:min(n, s + 1024)]).float()
            tot += torch.nn.functional.cross_entropy(lg, tgt[s:s + lg.shape[0]], reduction="sum").item()
        mean_nll = tot / n
    return sel, mean_nll


def rel(a, b):
    return float((a - b).norm() / b.norm())


def write_case(out, name, info, ids, pos, ref):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    info = dict(info, name=name, n=len(ids), positions=pos)
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(info, f, indent=1)
    with open(os.path.join(d, "ids.json"), "w") as f:
        json.dump([int(x) for x in ids], f)
    ref.numpy().astype("<f4").tofile(os.path.join(d, "ref_logits.f32"))


def compare_dtypes(m32, m16, ids, pos, nll):
    t0 = time.time()
    r32, nll32 = run(m32, ids, pos, nll)
    r16, nll16 = run(m16, ids, pos, nll)
    hf = dict(fp16_rel_err=rel(r16, r32), fp16_rel_err_last=rel(r16[-1], r32[-1]),
              fp16_max_abs=float((r16 - r32).abs().max()), seconds=round(time.time() - t0, 2))
    if nll:
        hf.update(fp32_nll=nll32, fp16_nll=nll16)
    return r32, hf


def random_cases(a, versions):
    for shape in a.shapes.split(","):
        if not shape:
            continue
        s = SHAPES[shape]
        torch.manual_seed(1234)
        cfg = getattr(transformers, s["cfg"])(num_hidden_layers=a.layers, **s["kw"])
        model = getattr(transformers, s["cls"])(cfg)
        # Larger-than-default init so that the layers matter in the logits.
        with torch.no_grad():
            for n_, p in model.named_parameters():
                if "norm" in n_:
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                elif "bias" in n_:
                    p.copy_(0.1 * torch.randn_like(p))
                else:
                    p.copy_(torch.randn_like(p) / (p.shape[-1] ** 0.5))
        model = model.to(torch.bfloat16)
        mdir = os.path.join(a.out, "models", shape)
        model.save_pretrained(mdir, safe_serialization=True)
        m32 = model.to(torch.float32).cuda().eval()
        m16 = getattr(transformers, s["cls"])(cfg).to(torch.float16)
        m16.load_state_dict(m32.state_dict())
        m16 = m16.cuda().eval()
        for n in parse_lens(a.lens):
            g = torch.Generator().manual_seed(99 + n)
            ids = torch.randint(0, cfg.vocab_size, (1, n), generator=g)
            pos = positions_for(n, a.positions)
            ref, hf = compare_dtypes(m32, m16, ids, pos, False)
            name = f"{shape}@{n}"
            write_case(a.out, name, dict(kind="random", shape=shape, layers=a.layers, model=os.path.join("..", "models", shape),
                                         vocab=cfg.vocab_size, nll=False, hf=hf, versions=versions), ids[0].tolist(), pos, ref)
            print(f"{name}: transformers fp16 vs fp32 rel err {hf['fp16_rel_err']:.4g} (last {hf['fp16_rel_err_last']:.4g}) in {hf['seconds']} s", flush=True)
        del model, m32, m16
        torch.cuda.empty_cache()


def model_cases(a, versions):
    tok = transformers.AutoTokenizer.from_pretrained(a.model)
    with open(a.heldout) as f:
        held = json.load(f)
    bos, eos = tok.bos_token_id, tok.eos_token_id
    stream = []
    for d in held["docs"]:
        if d["source"] != "go":
            continue
        if bos is not None:
            stream.append(bos)
        stream += tok(d["text"], add_special_tokens=False)["input_ids"]
        if eos is not None:
            stream.append(eos)
    m32 = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).cuda().eval()
    m16 = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float16).cuda().eval()
    name0 = os.path.basename(os.path.normpath(a.model))
    for n in parse_lens(a.model_lens):
        ids = torch.tensor([stream[:n]])
        pos = positions_for(n, a.positions)
        ref, hf = compare_dtypes(m32, m16, ids, pos, True)
        name = f"{name0}@{n}"
        write_case(a.out, name, dict(kind="model", shape=name0, model=os.path.relpath(os.path.abspath(a.model), os.path.join(os.path.abspath(a.out), name)),
                                     vocab=m32.config.vocab_size, nll=True, source="held-out Go files (first n tokens)", hf=hf, versions=versions),
                   stream[:n], pos, ref)
        print(f"{name}: transformers fp32 NLL {hf['fp32_nll']:.4f}, fp16 vs fp32 rel err {hf['fp16_rel_err']:.4g} in {hf['seconds']} s", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", default="llama3.2-1b,mha-d64", help="random-weight shapes: " + ",".join(SHAPES) + " (empty: none)")
    ap.add_argument("--lens", default="64,256,1024,4096,8192")
    ap.add_argument("--n", type=int, default=0, help="one length (the old interface; overrides --lens)")
    ap.add_argument("--only", default="", help="the old name of --shapes")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--positions", type=int, default=128, help="logits stored at this many positions per case at most")
    ap.add_argument("--model", default="", help="a trained model directory (bench-lm-8k)")
    ap.add_argument("--heldout", default="", help="its held-out file (shareprefill bench accuracy --write-heldout)")
    ap.add_argument("--model-lens", default="512,2048,8192,16384")
    ap.add_argument("--ours", default="", help="our binary: run `OURS bench accuracy --oracle OUT` afterwards")
    ap.add_argument("--json", default="", help="with --ours: the comparison report (JSON)")
    ap.add_argument("--md", default="", help="with --ours: the comparison tables (Markdown)")
    a = ap.parse_args()
    if a.n:
        a.lens = str(a.n)
    if a.only:
        a.shapes = a.only
    versions = dict(torch=torch.__version__, transformers=transformers.__version__,
                    device=torch.cuda.get_device_name(0), attn="sdpa (default)")
    os.makedirs(a.out, exist_ok=True)
    random_cases(a, versions)
    if a.model:
        if not a.heldout:
            ap.error("--model needs --heldout")
        model_cases(a, versions)
    if a.ours:
        cmd = [a.ours, "bench", "accuracy", "--oracle", a.out]
        if a.json:
            cmd += ["--json", a.json]
        if a.md:
            cmd += ["--md", a.md]
        print("running", " ".join(cmd), flush=True)
        sys.exit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
