"""The release filter's run: candidates stream through in batches, each embedded once per matcher and
searched against the training identities; a candidate that reaches any filtering gate's threshold is
dropped, the rest are kept (optionally also dropping faces that match a face already kept), until
`count` are kept or `max_candidates` were scored.

    result = run_filter(source, gates, checks, FilterSettings(fmr=1e-3, count=1000), Path("out/"))

The run folder (OUT) holds:
    filter.settings.json   what the run is (matchers and versions, thresholds, source, options)
    candidates.jsonl       one line per scored candidate, appended after each batch (the resume point)
    kept/LABEL.png         the kept images
    removed/LABEL.png      the removed images, only with keep_removed (they are likenesses of training people)
    kept-MATCHER.f32       the kept faces' embeddings (with dedup), float32 rows, for the duplicate check
Memory is bounded: nothing per candidate stays in memory but the kept faces' labels (and, with dedup,
their embeddings, count x D x 4 bytes per matcher). An interrupted run continues from
candidates.jsonl without re-embedding what it scored; filter.json and filter.html (summary.py) are
written from that file at the end. A resume checks the folder against candidates.jsonl first: a line
that repeats or skips a candidate is refused naming the line, and a kept (or removed) PNG that is
missing is rendered again from the source.
"""
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Protocol

import numpy as np
import torch
from PIL import Image

from leakguard.atomic import strict_json, write_json
from leakguard.filter.gates import Gate, Scores

SETTINGS_FILE = "filter.settings.json"
CANDIDATES_FILE = "candidates.jsonl"
FORMAT = 1


class CandidateSource(Protocol):
    """Where candidates come from: a generator's seeds, or an image folder or zip."""
    description: dict           # what it is, recorded in the settings (a resume must find the same)
    limit: Optional[int]        # candidates it can give at most (None: unbounded, e.g. seeds)

    def batches(self, start: int, size: int) -> Iterator[tuple[list[str], torch.Tensor]]:
        """(labels, uint8 [n, 3, H, W]) from candidate `start` on, `size` at a time."""


@dataclass
class FilterSettings:
    fmr: float                       # false-match rate every filtering threshold is set at
    count: int                       # stop once this many candidates are kept
    max_candidates: int              # ... or once this many were scored
    dedup: bool = False              # also drop a face that matches a face already kept
    batch: int = 64                  # candidates per batch (and per resume step)
    keep_removed: bool = False       # write the removed images too (for the report's pairs)

    def __post_init__(self):
        if self.count < 1:
            raise ValueError(f"--count {self.count}: must be at least 1")
        if self.max_candidates < 1:
            raise ValueError(f"--max-candidates {self.max_candidates}: must be at least 1")
        if self.batch < 1:
            raise ValueError(f"--batch {self.batch}: must be at least 1")
        if not 0 < self.fmr < 1:
            raise ValueError(f"--fmr {self.fmr:g}: must lie in (0, 1)")


@dataclass
class Timings:
    """Seconds spent per stage, for bench/filter.py."""
    render: float = 0.0              # making or reading the candidates
    embed: float = 0.0               # matcher forward passes
    search: float = 0.0              # best training identity (and duplicates)
    write: float = 0.0               # PNGs and candidates.jsonl
    candidates: int = 0
    restored: int = 0                # PNGs a resume found missing and rendered again


@dataclass
class Progress:
    """What candidates.jsonl holds so far: counts, and the kept faces' labels only with dedup (the reasons
    name the kept face a duplicate matches), so memory does not grow with the candidates otherwise."""
    scored: int = 0
    kept: int = 0
    kept_labels: Optional[list] = None
    missing: list = field(default_factory=list)  # (index, label, folder) of PNGs a resume did not find


def run_settings(source: CandidateSource, gates: list[Gate], checks: list[Gate], s: FilterSettings) -> dict:
    """The settings record: everything a resumed run must share with the run it continues."""
    return {"format": FORMAT, "source": source.description, "fmr": s.fmr, "dedup": s.dedup,
            "keep_removed": s.keep_removed,
            "matchers": {g.name: {"version": g.matcher.version, "threshold": g.threshold} for g in gates},
            "check_matchers": {g.name: {"version": g.matcher.version, "threshold": g.threshold} for g in checks}}


def open_run(out: Path, settings: dict, resume: bool, force: bool) -> Progress:
    """Starts a run in `out`, or continues the one there (resume); refuses to mix two runs."""
    path = out / SETTINGS_FILE
    if path.is_file() and resume:
        before = read_settings(out)
        changed = [k for k in settings if before.get(k) != settings[k]]
        if changed:
            raise ValueError(f"{path}: the run there differs in {', '.join(changed)} "
                             f"({before.get(changed[0])!r} there, {settings[changed[0]]!r} now); resume with the "
                             f"same options, or start over with --force")
        return read_progress(out, settings["dedup"], settings["keep_removed"])
    if path.is_file() and not force:
        raise FileExistsError(f"--out {out}: holds a filter run; pass --resume to continue it or --force to "
                              f"start over")
    clear_run(out)
    write_json(path, settings)
    return Progress(kept_labels=[] if settings["dedup"] else None)


def clear_run(out: Path) -> None:
    """Removes a previous run's files (only the files a filter run writes)."""
    for name in (CANDIDATES_FILE, "filter.json", "filter.html"):
        (out / name).unlink(missing_ok=True)
    for pattern in ("kept/*.png", "removed/*.png", "kept-*.f32"):
        for p in out.glob(pattern):
            p.unlink()


def read_settings(out: Path) -> dict:
    """filter.settings.json of the run in `out`, or an error naming the file."""
    path = out / SETTINGS_FILE
    try:
        settings = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON (line {e.lineno}: {e.msg}); the file was damaged: start over with "
                         f"--force") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file; the file was damaged: start over with --force") from None
    if not isinstance(settings, dict) or settings.get("format") != FORMAT:
        raise ValueError(f"{path}: not the settings of a filter run (format {FORMAT} expected); start over with "
                         f"--force")
    return settings


def candidate_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) of each line of candidates.jsonl; a line that is not a candidate's record is an
    error naming the file and the line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not a JSON line ({e.msg}); the file was damaged: delete the lines from "
                                 f"{n} on to score them again, or start over with --force") from None
            if not (isinstance(record, dict) and isinstance(record.get("index"), int)
                    and isinstance(record.get("label"), str) and isinstance(record.get("kept"), bool)):
                raise ValueError(f"{path}:{n}: not a candidate's record (index, label, kept); the file was damaged: "
                                 f"delete the lines from {n} on to score them again, or start over with --force")
            yield n, record


def read_progress(out: Path, dedup: bool, keep_removed: bool = False) -> Progress:
    """The scored and kept counts (and kept labels) in candidates.jsonl, which must hold candidates 0, 1, ...
    once each in order, and the PNGs it names that are missing; a line cut short by a kill is dropped."""
    path = out / CANDIDATES_FILE
    progress = Progress(kept_labels=[] if dedup else None)
    if not path.is_file():
        return progress
    with open(path, "r+b") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        f.seek(max(0, end - (1 << 20)))
        tail = f.read()
        if tail and not tail.endswith(b"\n"):   # a kill mid-line: keep the whole lines before it
            f.truncate(end - len(tail) + tail.rfind(b"\n") + 1)
    for n, record in candidate_records(path):
        index, label = record["index"], record["label"]
        if index != progress.scored:
            what = (f"repeats candidate {index} ({label}) of line {index + 1}" if index < progress.scored else
                    f"holds candidate {index} ({label}) where candidate {progress.scored} belongs")
            raise ValueError(f"{path}:{n}: {what}; the file was edited: delete line {n} and those after it to score "
                             f"them again, or start over with --force")
        progress.scored += 1
        progress.kept += record["kept"]
        if record["kept"] and dedup:
            progress.kept_labels.append(label)
        folder = "kept" if record["kept"] else "removed"
        if (record["kept"] or keep_removed) and not (out / folder / f"{label}.png").is_file():
            progress.missing.append((index, label, folder))
    return progress


def restore_images(out: Path, source: CandidateSource, missing: list) -> int:
    """Renders again the PNGs candidates.jsonl names that are not in `out` (from the same source: a
    resume's settings equal the run's); returns how many."""
    for index, label, folder in missing:
        found = next(source.batches(index, 1), None)
        if found is None or found[0][:1] != [label]:
            got = "nothing" if found is None else repr(found[0][0])
            raise ValueError(f"{out / folder / (label + '.png')}: missing, and the source gives {got} for candidate "
                             f"{index}, not {label!r}; start over with --force")
        _save_png(out / folder, label, found[1][0])
    return len(missing)


class KeptEmbeddings:
    """The kept faces' embeddings under one matcher, on disk (append-only float32 rows) and in memory."""

    def __init__(self, out: Path, gate: Gate, rows: int):
        self.path, self.dim = out / f"kept-{gate.name}.f32", gate.matcher.embedding_dim
        data = np.fromfile(self.path, np.float32) if self.path.is_file() else np.zeros(0, np.float32)
        if len(data) < rows * self.dim:
            raise ValueError(f"{self.path}: holds {len(data) // self.dim} kept faces, candidates.jsonl says "
                             f"{rows}; start over with --force")
        with open(self.path, "ab") as f:   # rows written by a batch that never reached candidates.jsonl
            f.truncate(rows * self.dim * 4)
        self.rows = torch.from_numpy(data[:rows * self.dim].reshape(rows, self.dim).copy()).to(gate.train.device)

    def best(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Best cosine [n] of each face against the kept ones, and which kept face (-1 when none)."""
        if len(self.rows) == 0:
            return torch.full([len(emb)], -2.0, device=emb.device), torch.full([len(emb)], -1, device=emb.device)
        return (emb @ self.rows.T).max(dim=1)

    def add(self, emb: torch.Tensor) -> None:
        self.rows = torch.cat([self.rows, emb])
        with open(self.path, "ab") as f:
            f.write(emb.float().cpu().numpy().tobytes())
            f.flush()
            os.fsync(f.fileno())


def _score_gates(gates: list[Gate], pixels: torch.Tensor, t: Timings) -> list[Scores]:
    out = []
    for g in gates:
        t0 = time.perf_counter()
        emb = g.embed(pixels)
        t1 = time.perf_counter()
        out.append(g.search(emb))
        t.embed, t.search = t.embed + t1 - t0, t.search + time.perf_counter() - t1
    return out


def _decide(labels: list[str], gates: list[Gate], scores: list[Scores], kept: Optional[list[KeptEmbeddings]],
            progress: Progress) -> list[str]:
    """Why each candidate is dropped ('' = kept); with `kept`, against earlier keeps too."""
    why, chosen = [], []
    for i, label in enumerate(labels):
        reasons = [f"matches training identity {int(sc.identity[i])} under {g.name} ({sc.best[i]:.4f} >= "
                   f"{g.threshold:.4f})" for g, sc in zip(gates, scores) if sc.best[i] >= g.threshold]
        if not reasons and kept is not None:
            reasons = _duplicate(i, chosen, gates, scores, kept, progress.kept_labels, labels)
        why.append("; ".join(reasons))
        if not reasons:
            chosen.append(i)
    return why


def _duplicate(i: int, chosen: list[int], gates, scores, kept, kept_labels, labels) -> list[str]:
    """A reason when face i matches a face kept before it (earlier batches or earlier in this batch)."""
    for g, sc, store in zip(gates, scores, kept):
        e = sc.embeddings[i:i + 1]                                           # [1, D]
        best, j = store.best(e)
        if chosen:
            mine = (e @ sc.embeddings[chosen].T)[0]                          # [chosen]
            if mine.max() > best[0]:
                best, j = mine.max()[None], torch.tensor([len(kept_labels) + int(mine.argmax())])
        if best[0] >= g.threshold:
            k = int(j[0])
            other = kept_labels[k] if k < len(kept_labels) else labels[chosen[k - len(kept_labels)]]
            return [f"near-duplicate of kept {other} under {g.name} ({float(best[0]):.4f} >= {g.threshold:.4f})"]
    return []


def _record(label: str, i: int, index: int, why: str, gates, scores, checks, check_scores, j) -> dict:
    """One candidates.jsonl line."""
    r = {"index": index, "label": label, "kept": not why, "why": why,
         "scores": {g.name: {"best": float(sc.best[i]), "identity": int(sc.identity[i]),
                             "training_index": int(sc.nearest[i])} for g, sc in zip(gates, scores)}}
    if not why and checks:
        r["check"] = {g.name: {"best": float(sc.best[j]), "identity": int(sc.identity[j]),
                               "training_index": int(sc.nearest[j])} for g, sc in zip(checks, check_scores)}
    return r


def _save_png(folder: Path, label: str, pixels: torch.Tensor) -> None:
    """Whole or absent after a kill (a temporary renamed), but not fsynced one by one: that doubled the run's
    time on small images. candidates.jsonl, the resume point, is fsynced after each batch."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{label}.png.tmp"
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(tmp, format="PNG")
    os.replace(tmp, folder / f"{label}.png")


def process_batch(out: Path, labels, pixels, start: int, gates, checks, kept, s: FilterSettings,
                  progress: Progress, t: Timings) -> None:
    """Scores one batch and writes it: PNGs, then embeddings, then the candidates.jsonl lines last."""
    scores = _score_gates(gates, pixels, t)
    t0 = time.perf_counter()
    why = _decide(labels, gates, scores, kept, progress)
    t.search += time.perf_counter() - t0
    keep = [i for i, w in enumerate(why) if not w][:s.count - progress.kept]
    if progress.kept + len(keep) == s.count:  # the batch ends at the candidate that fills --count
        labels, why = labels[:keep[-1] + 1], why[:keep[-1] + 1]
    check_scores = _score_gates(checks, pixels[keep], t) if keep and checks else []
    t0 = time.perf_counter()
    for i, label in enumerate(labels):
        if not why[i] or s.keep_removed:
            _save_png(out / ("kept" if not why[i] else "removed"), label, pixels[i])
    if kept is not None and keep:
        for store, sc in zip(kept, scores):
            store.add(sc.embeddings[keep])
    lines = [_record(label, i, start + i, why[i], gates, scores, checks, check_scores,
                     keep.index(i) if i in keep else -1) for i, label in enumerate(labels)]
    with open(out / CANDIDATES_FILE, "a") as f:
        f.write("".join(strict_json(line, indent=None) + "\n" for line in lines))
        f.flush()
        os.fsync(f.fileno())
    progress.scored += len(labels)
    progress.kept += len(keep)
    if progress.kept_labels is not None:
        progress.kept_labels += [labels[i] for i in keep]
    t.write += time.perf_counter() - t0
    t.candidates += len(labels)


def run_filter(source: CandidateSource, gates: list[Gate], checks: list[Gate], s: FilterSettings, out: Path,
               resume: bool = False, force: bool = False, stop_after_batches: Optional[int] = None) -> Timings:
    """Runs (or continues) the filter in `out` (module doc); returns where the time went.
    `stop_after_batches` ends it early, as a kill would between batches (tests of resume)."""
    if not gates:
        raise ValueError("filter: no matcher given; name at least one with --matcher NAME[=WEIGHTS]")
    out.mkdir(parents=True, exist_ok=True)
    progress = open_run(out, run_settings(source, gates, checks, s), resume, force)
    kept = [KeptEmbeddings(out, g, progress.kept) for g in gates] if s.dedup else None
    limit = s.max_candidates if source.limit is None else min(s.max_candidates, source.limit)
    t = Timings()
    t0 = time.perf_counter()
    t.restored = restore_images(out, source, progress.missing)
    t.render += time.perf_counter() - t0
    batches = source.batches(progress.scored, s.batch)
    while progress.kept < s.count and progress.scored < limit:
        if stop_after_batches is not None and stop_after_batches <= 0:
            break
        t0 = time.perf_counter()
        labels, pixels = next(batches)
        n = min(len(labels), limit - progress.scored)
        t.render += time.perf_counter() - t0
        process_batch(out, labels[:n], pixels[:n], progress.scored, gates, checks, kept, s, progress, t)
        stop_after_batches = None if stop_after_batches is None else stop_after_batches - 1
    return t
