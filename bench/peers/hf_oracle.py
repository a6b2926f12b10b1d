"""Hugging Face transformers as the oracle for shareprefill's forward pass.

For each architecture (Llama-3-8B, Qwen2.5-7B, Mistral-7B shapes, 2 layers,
random weights, seeded), this script builds the model with transformers,
saves it as safetensors (bf16) with its config.json into OUT/<name>/, and
writes the float32 logits of every position for a fixed random prompt to
OUT/<name>/ref_logits.f32 (row-major [n, vocab], little-endian) and the prompt
to OUT/<name>/ids.json. bench/oracle (Go) then runs our engine on the same
directory and reports the relative error.

Usage: python3 bench/peers/hf_oracle.py --out DIR [--n 64] [--layers 2]
"""
import argparse
import json
import os

import torch
import transformers


SHAPES = {
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    for name, s in SHAPES.items():
        if a.only and name not in a.only.split(","):
            continue
        torch.manual_seed(1234)
        cfg = getattr(transformers, s["cfg"])(num_hidden_layers=a.layers, **s["kw"])
        cfg.torch_dtype = "bfloat16"
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
        d = os.path.join(a.out, name)
        os.makedirs(d, exist_ok=True)
        model.save_pretrained(d, safe_serialization=True)
        g = torch.Generator().manual_seed(99)
        ids = torch.randint(0, cfg.vocab_size, (1, a.n), generator=g)
        m32 = model.to(torch.float32).cuda().eval()
        with torch.no_grad():
            logits = m32(ids.cuda()).logits[0].float().cpu().contiguous()
        logits.numpy().astype("<f4").tofile(os.path.join(d, "ref_logits.f32"))
        with open(os.path.join(d, "ids.json"), "w") as f:
            json.dump(ids[0].tolist(), f)
        print(f"{name}: saved to {d} ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M params), "
              f"logits {tuple(logits.shape)}", flush=True)
        del model, m32
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
