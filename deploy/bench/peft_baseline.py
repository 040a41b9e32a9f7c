#!/usr/bin/env python3
"""PyTorch + transformers + PEFT decode baseline for `weft bench` (DESIGN.md section 9).

The same model shape as weft's decode benchmark (a Hugging Face config.json), random weights in the
given dtype, N random LoRA adapters (rank r on q/k/v/o/gate/up/down), and PEFT's mixed-adapter batch
inference: `generate(..., adapter_names=[one name per row])`, rows grouped by adapter like weft's
batches. Base-only rows run on the plain transformers model before PEFT wraps it.

Decode time per step = (time of generate(new_tokens) - time of generate(1)) / (new_tokens - 1): the
prefill and the first token cancel out. new_tokens is --new-tokens, or fewer (at least 3) where a 3-token probe
shows that a call would take longer than --call-budget-ms. Prints a table on stderr and writes JSON (--output, else stdout).

Needs torch, transformers and peft (the GPU machine has torch 2.11, transformers 5.17, PEFT 0.21).
Run by `weft bench --scenario baseline`, or by hand:
  python3 deploy/bench/peft_baseline.py --config CONFIG.json --batch 1,8,32 --adapters 0,1,8,32 \
      --rank 16 --context 512 --device cuda --output baseline.json
"""
import argparse
import datetime
import json
import statistics
import sys
import time

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def int_list(text):
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="a Hugging Face config.json (Llama family)")
    p.add_argument("--batch", type=int_list, default=[1, 8, 32])
    p.add_argument("--adapters", type=int_list, default=[0, 1, 8, 32], help="distinct adapters per batch")
    p.add_argument("--rank", type=int_list, default=[16])
    p.add_argument("--context", type=int_list, default=[512], help="prompt tokens before decoding")
    p.add_argument("--new-tokens", type=int, default=64, help="tokens per timed generate call (at most)")
    p.add_argument("--call-budget-ms", type=float, default=6000,
                   help="fewer new tokens for slow points, so one timed call takes about this long (at least 3 tokens)")
    p.add_argument("--repeats", type=int, default=3, help="timed generate calls per point (median)")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None)
    return p.parse_args(argv)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def build_model(args, torch, transformers):
    with open(args.config) as f:
        cfg = json.load(f)
    model_type = cfg.pop("model_type", "llama")
    for key in ("architectures", "torch_dtype", "dtype", "transformers_version"):
        cfg.pop(key, None)
    config = transformers.AutoConfig.for_model(model_type, **cfg)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(args.seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # allocate (and randomly initialise) directly in the target dtype
    try:
        with torch.device(args.device):
            model = transformers.AutoModelForCausalLM.from_config(config)
    finally:
        torch.set_default_dtype(previous)
    model = model.to(device=args.device, dtype=dtype).eval()
    # Never stop early: every timed call generates exactly the tokens asked for.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model, config


def add_adapters(model, ranks, count, dtype, peft):
    """Adds `count` random adapters per rank, named bench-r<rank>-<i>; returns the PeftModel."""
    peft_model = None
    for rank in ranks:
        for i in range(count):
            cfg = peft.LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=TARGETS,
                                  init_lora_weights=False, task_type="CAUSAL_LM")
            name = f"bench-r{rank}-{i}"
            if peft_model is None:
                peft_model = peft.get_peft_model(model, cfg, adapter_name=name, autocast_adapter_dtype=False)
            else:
                peft_model.add_adapter(name, cfg)
    for name, param in peft_model.named_parameters():
        if "lora_" in name:
            param.data = param.data.to(dtype)  # adapters in the base dtype, as weft holds them
    return peft_model.eval()


def timed_generate(torch, model, input_ids, new_tokens, adapter_names, repeats, sync, warmup=True):
    kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=new_tokens,
                  min_new_tokens=new_tokens, do_sample=False)
    if adapter_names is not None:
        kwargs["adapter_names"] = adapter_names
    times = []
    with torch.inference_mode():
        if warmup:
            model.generate(**kwargs)
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            out = model.generate(**kwargs)
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
    generated = out.shape[1] - input_ids.shape[1]
    if generated != new_tokens:
        raise RuntimeError(f"generate produced {generated} tokens, expected {new_tokens}")
    return statistics.median(times)


def measure(torch, model, args, vocab, batch, context, adapter_names, sync):
    gen = torch.Generator(device="cpu").manual_seed(args.seed + batch * 7919 + context)
    input_ids = torch.randint(3, vocab, (batch, context), generator=gen).to(args.device)
    first_ms = timed_generate(torch, model, input_ids, 1, adapter_names, args.repeats, sync)
    # PEFT's mixed-adapter batches can take seconds per step (16 tok/s at batch 32 × 32 adapters on an H100):
    # a 3-token probe sizes the timed calls to about --call-budget-ms, so the whole grid fits one run.
    probe_ms = timed_generate(torch, model, input_ids, 3, adapter_names, 1, sync, warmup=False)
    step_estimate = max((probe_ms - first_ms) / 2, 1e-3)
    new_tokens = int(max(3, min(args.new_tokens, 1 + args.call_budget_ms // step_estimate)))
    full_ms = timed_generate(torch, model, input_ids, new_tokens, adapter_names, args.repeats, sync,
                             warmup=new_tokens != 3)
    step_ms = (full_ms - first_ms) / (new_tokens - 1)
    return {"prefill_ms": first_ms, "generate_ms": full_ms, "new_tokens": new_tokens, "step_ms": step_ms,
            "tok_per_s": batch / step_ms * 1e3}


def main(argv):
    args = parse_args(argv)
    if args.new_tokens < 2:
        raise SystemExit("--new-tokens must be at least 2")
    import torch
    import transformers
    import peft

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("peft_baseline: --device cuda but torch sees no GPU; run it on the GPU machine (or pass --device cpu)")
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    dtype = getattr(torch, args.dtype)
    model, config = build_model(args, torch, transformers)
    vocab = config.vocab_size
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    log(f"peft_baseline: {device_name}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"peft {peft.__version__}, {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B params {args.dtype}")

    rows = []
    for context in args.context:
        for batch in args.batch:
            if 0 in args.adapters:
                r = measure(torch, model, args, vocab, batch, context, None, sync)
                rows.append({"batch": batch, "adapters": 0, "rank": 0, "context": context, **r})
                log(f"base     batch={batch:3d} context={context}: {r['step_ms']:.2f} ms/step, {r['tok_per_s']:.0f} tok/s")

    counts = [a for a in args.adapters if a > 0]
    if counts:
        peft_model = add_adapters(model, args.rank, max(counts), dtype, peft)
        for context in args.context:
            for batch in args.batch:
                for rank in args.rank:
                    for a in counts:
                        if a > batch:
                            continue
                        names = [f"bench-r{rank}-{(i * a) // batch}" for i in range(batch)]
                        r = measure(torch, peft_model, args, vocab, batch, context, names, sync)
                        rows.append({"batch": batch, "adapters": a, "rank": rank, "context": context, **r})
                        log(f"adapters={a:3d} rank={rank} batch={batch:3d} context={context}: "
                            f"{r['step_ms']:.2f} ms/step, {r['tok_per_s']:.0f} tok/s")

    report = {
        "scenario": "baseline",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "device": device_name,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "setup": {"config": args.config, "dtype": args.dtype, "max_new_tokens": args.new_tokens,
                  "call_budget_ms": args.call_budget_ms, "repeats": args.repeats,
                  "method": "PeftModel.generate(adapter_names=...), greedy; step_ms = (t(new_tokens) - t(1)) / (new_tokens - 1), "
                            "new_tokens per row (fewer for slow rows, from a 3-token probe)"},
        "rows": rows,
    }
    text = json.dumps(report, indent=2)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
