#!/usr/bin/env python3
"""Instruction mix of the CPU kernels' inner loops, from static disassembly.

The AArch64 kernels cannot be timed here (they run under qemu), so their inner loops are
counted instead: for each kernel object, every innermost loop (a backward branch with no other
backward branch inside) of the functions that hold the micro-GEMMs is classified, and the loops
with the most multiply-add instructions are reported with

  FMA    vector multiply-add instructions (FMLA / BFDOT, vfmadd*ps / vdpbf16ps)
  LOAD   vector or broadcast loads (LD1/LD1R/LDR q/s, vmovups/vbroadcastss loads)
  OTHER  everything else (address arithmetic, loop control, moves)
  FLOP/insn   floating-point operations per instruction of the loop
  FMA/LOAD    multiply-adds per load

FLOPs per instruction: FMLA (4 f32 lanes) 8, BFDOT (4 lanes x 2 products) 16, vfmadd231ps 2 x
lanes, vdpbf16ps 4 x lanes (lanes from the register: xmm 4, ymm 8, zmm 16).

Usage: instruction_mix.py [--objdump TOOL] [--top N] [--match REGEX] OBJECT [OBJECT ...]
  --match keeps only the functions whose name matches REGEX (e.g. 'micro_gemm|row_')
  e.g. core/scripts/instruction_mix.py --objdump aarch64-linux-gnu-objdump \\
         build/native/linux-arm64/CMakeFiles/umfa_cpu.dir/src/cpu/kernels_neon.cpp.o
"""
import re
import subprocess
import sys


def disassemble(objdump, path):
    out = subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", path], check=True,
                         capture_output=True, text=True).stdout
    funcs, cur = {}, None
    for line in out.splitlines():
        m = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
        if m:
            cur = m.group(2)
            funcs[cur] = []
            continue
        m = re.match(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
        if m and cur is not None:
            funcs[cur].append((int(m.group(1), 16), m.group(2), m.group(3)))
    return funcs


BRANCH = re.compile(r"^(b|b\..*|cbn?z|tbn?z|j.*)$")


def target(mnemonic, operands):
    if not BRANCH.match(mnemonic) or mnemonic in ("jmpq", "jmp") and "*" in operands:
        return None
    m = re.search(r"\b([0-9a-f]+) <", operands)
    return int(m.group(1), 16) if m else None


def lanes_of(operands):
    if "zmm" in operands:
        return 16
    if "ymm" in operands:
        return 8
    return 4


def classify(mnemonic, operands):
    """(kind, flops) of one instruction."""
    mn = mnemonic.lower()
    if mn == "fmla" and ".4s" in operands:
        return "fma", 8
    if mn == "fmla" and ".2s" in operands:
        return "fma", 4
    if mn == "bfdot":
        return "fma", 16 if ".4s" in operands else 8
    if mn == "bfmmla":
        return "fma", 32
    if re.match(r"vfn?madd(132|213|231)ps", mn):
        return "fma", 2 * lanes_of(operands)
    if mn == "vdpbf16ps":
        return "fma", 4 * lanes_of(operands)
    if mn in ("ld1r", "ld1", "ld2", "ldp", "ldr", "ldur") and re.search(r"\b[qsv]\d+|\{v", operands):
        return "load", 0
    if mn.startswith("v") and "(" in operands and re.search(r"[xyz]mm\d+$", operands.strip()):
        return "load", 0  # AT&T syntax: a memory source, a vector register destination
    if re.match(r"vfn?madd(132|213|231)ps|vdpbf16ps", mn):
        return "fma", 0
    return "other", 0


def loops(insns):
    """Innermost loops: (start, end) index pairs of backward branches with none nested inside."""
    index = {addr: i for i, (addr, _, _) in enumerate(insns)}
    found = []
    for i, (addr, mn, ops) in enumerate(insns):
        t = target(mn, ops)
        if t is not None and t <= addr and t in index:
            found.append((index[t], i))
    inner = []
    for s, e in found:
        if not any(s <= s2 and e2 <= e and (s2, e2) != (s, e) for s2, e2 in found):
            inner.append((s, e))
    return inner


def report(objdump, path, top, match):
    funcs = disassemble(objdump, path)
    rows = []
    for name, insns in funcs.items():
        if match and not re.search(match, name):
            continue
        for s, e in loops(insns):
            body = insns[s:e + 1]
            kinds = [classify(mn, ops) for _, mn, ops in body]
            fma = sum(1 for k, _ in kinds if k == "fma")
            if fma == 0:
                continue
            load = sum(1 for k, _ in kinds if k == "load")
            flops = sum(f for _, f in kinds)
            rows.append((fma, len(body), load, flops, name))
    rows.sort(key=lambda r: (-r[0], r[1]))
    print(f"{path}")
    print(f"  {'insns':>5} {'FMA':>4} {'LOAD':>4} {'OTHER':>5} {'FLOP/insn':>9} {'FMA/LOAD':>8}  function")
    seen = set()
    shown = 0
    for fma, n, load, flops, name in rows:
        short = re.sub(r"\(.*", "", re.sub(r"umfa::cpu::\w+::\(anonymous namespace\)::", "", name))
        short = re.sub(r"^void ", "", short)
        # One line per function (its loop with the most multiply-adds, then the shortest);
        # template instances differ by their register block, so each keeps its own line.
        key = re.sub(r"<(\d+), (\d+), .*>", r"<\1, \2>", short)
        if key in seen:
            continue
        seen.add(key)
        print(f"  {n:>5} {fma:>4} {load:>4} {n - fma - load:>5} {flops / n:>9.2f} "
              f"{(fma / load if load else float('inf')):>8.2f}  {short[:90]}")
        shown += 1
        if shown >= top:
            break


def main(argv):
    objdump, top, match, paths = "objdump", 8, None, []
    i = 0
    while i < len(argv):
        if argv[i] == "--objdump":
            objdump = argv[i + 1]
            i += 2
        elif argv[i] == "--match":
            match = argv[i + 1]
            i += 2
        elif argv[i] == "--top":
            top = int(argv[i + 1])
            i += 2
        else:
            paths.append(argv[i])
            i += 1
    if not paths:
        print(__doc__)
        return 2
    for p in paths:
        report(objdump, p, top, match)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
