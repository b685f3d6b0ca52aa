"""Trains the speaking model on the token ids prepare.py wrote, checkpointing as it goes.

    python3 tools/speaking-model/train.py --work WORK [--steps N] [--stop-after N] [--threads 2]

Every sample is BOS followed by the tokens from a random verse start (what a prompt looks like to the
engine: BOS, then text). AdamW with linear warm-up and cosine decay from --schedule-start (default 0) to
--steps, so a later phase resuming from a checkpoint can run a schedule of its own; --stop-after ends the
run early with the schedule unchanged (the final checkpoint says where it stopped). The routers'
e_score_correction_bias is not trained by gradient: after every step it moves by --bias-rate towards
balanced expert load (DeepSeek-V3's auxiliary-loss-free balancing). Seeded: the same command on the same
thread count gives the same weights.
"""

import argparse
import json
import math
import os
import time

import numpy as np
import torch

from model import DeepseekV3ForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True, help="folder prepare.py wrote (train.npy, config.json)")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--stop-after", type=int, default=None)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument(
        "--schedule-start",
        type=int,
        default=0,
        help="step at which this phase's warm-up and cosine begin (0: the schedule spans steps 0..--steps)",
    )
    ap.add_argument("--bias-rate", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--checkpoint-every", type=int, default=20)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    cfg = json.load(open(os.path.join(args.work, "config.json")))
    train = np.load(os.path.join(args.work, "train.npy")).astype(np.int64)
    starts = np.load(os.path.join(args.work, "train_line_starts.npy"))
    starts = starts[starts + args.seq < len(train)]
    bos = cfg["bos_token_id"]

    model = DeepseekV3ForCausalLM(cfg)
    gen = torch.Generator().manual_seed(args.seed)
    model.init_weights(gen)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
    )
    ckpt_path = os.path.join(args.work, "checkpoint.pt")
    step = 0
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        rng.bit_generator.state = ck["rng"]
        print(f"resumed at step {step}", flush=True)
    stop = args.stop_after if args.stop_after is not None else args.steps
    if not step >= args.schedule_start < args.steps:
        ap.error(
            f"--schedule-start {args.schedule_start} must be at most the step the run starts at ({step}) "
            f"and below --steps {args.steps}"
        )
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters {n_params}, train tokens {len(train)}, steps {args.steps}", flush=True)

    def lr_at(s):
        u = s - args.schedule_start
        if u < args.warmup:
            return args.lr * (u + 1) / args.warmup
        t = (u - args.warmup) / max(1, args.steps - args.schedule_start - args.warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))

    t0 = time.time()
    smooth = None
    while step < stop:
        picks = rng.choice(starts, size=args.batch)
        rows = [np.concatenate(([bos], train[s : s + args.seq])) for s in picks]
        batch = torch.from_numpy(np.stack(rows))
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        logits = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for moe in model.moe_layers():
                load = moe.last_load
                moe.gate.e_score_correction_bias += args.bias_rate * torch.sign(load.mean() - load)
        step += 1
        smooth = loss.item() if smooth is None else 0.95 * smooth + 0.05 * loss.item()
        if step % 10 == 0:
            loads = [m.last_load.tolist() for m in model.moe_layers()]
            print(
                f"step {step} loss {loss.item():.4f} smooth {smooth:.4f} lr {lr_at(step - 1):.2e} "
                f"elapsed {time.time() - t0:.0f}s load0 {[int(x) for x in loads[0]]}",
                flush=True,
            )
        if step % args.checkpoint_every == 0 or step == stop:
            tmp = ckpt_path + ".tmp"
            torch.save(
                {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "rng": rng.bit_generator.state},
                tmp,
            )
            os.replace(tmp, ckpt_path)
    print(f"done at step {step} in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
