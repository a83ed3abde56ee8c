"""The privacy ledger: every access to private data, as a mechanism, and epsilon(delta) at any time.

    ledger = PrivacyLedger(delta=1e-5, accountant="rdp")
    ledger.record("dp_d_step", sigma=1.1, q=0.01)        # once per private step
    ledger.epsilon()                                      # spent so far, at ledger.delta
    ledger.state_dict() / load_state_dict(...)            # saved in every snapshot, continued on resume

Each mechanism is a Poisson-subsampled Gaussian (sigma, q) that ran `steps` times; the accountant
composes them all. Later features (an identity bank, canaries) add their own named mechanisms to the
same ledger, so the epsilon it reports is the whole run's.
"""
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version

from leakguard.privacy.accountants import check_accountant, check_delta, check_mechanism, epsilon

FORMAT = "leakguard.privacy-ledger/1"


class PrivacyLedgerError(ValueError):
    """A ledger state that cannot be continued (another accountant or delta, or not a ledger)."""


@dataclass(frozen=True)
class Mechanism:
    """A Poisson-subsampled Gaussian mechanism: noise multiplier sigma, sampling rate q, run `steps` times."""
    name: str
    sigma: float
    q: float
    steps: int


def opacus_version() -> str:
    try:
        return version("opacus")
    except PackageNotFoundError:
        return "unknown"


class PrivacyLedger:
    def __init__(self, delta: float, accountant: str = "rdp"):
        check_delta(delta)
        check_accountant(accountant)
        self.delta, self.accountant = float(delta), accountant
        self.mechanisms: list[Mechanism] = []
        self._cache: tuple[tuple, float] | None = None

    def record(self, name: str, sigma: float, q: float, steps: int = 1) -> None:
        """Counts `steps` more runs of mechanism (sigma, q); consecutive runs of one mechanism merge."""
        check_mechanism(sigma, q, steps)
        last = self.mechanisms[-1] if self.mechanisms else None
        if last is not None and (last.name, last.sigma, last.q) == (name, float(sigma), float(q)):
            self.mechanisms[-1] = Mechanism(name, last.sigma, last.q, last.steps + steps)
        else:
            self.mechanisms.append(Mechanism(name, float(sigma), float(q), int(steps)))

    def steps(self, name: str | None = None) -> int:
        return sum(m.steps for m in self.mechanisms if name is None or m.name == name)

    def history(self) -> list[tuple[float, float, int]]:
        return [(m.sigma, m.q, m.steps) for m in self.mechanisms]

    def epsilon(self, delta: float | None = None) -> float:
        """epsilon spent so far at `delta` (default: the ledger's)."""
        key = (tuple(self.history()), delta)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, epsilon(self.history(), self.delta if delta is None else delta, self.accountant))
        return self._cache[1]

    def epsilon_after(self, sigma: float, q: float, steps: int) -> float:
        """epsilon if mechanism (sigma, q) ran `steps` more times."""
        return epsilon(self.history() + [(float(sigma), float(q), int(steps))], self.delta, self.accountant)

    def steps_within(self, target_epsilon: float, sigma: float, q: float, limit: int) -> int:
        """The most further runs (at most `limit`) of (sigma, q) that keep epsilon <= target_epsilon.
        Epsilon grows with steps, so a bisection finds it in log2(limit) accountant calls."""
        if self.epsilon() > target_epsilon:
            return 0
        if self.epsilon_after(sigma, q, limit) <= target_epsilon:
            return limit
        lo, hi = 0, limit  # epsilon_after(lo) <= target < epsilon_after(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.epsilon_after(sigma, q, mid) <= target_epsilon:
                lo = mid
            else:
                hi = mid
        return lo

    def state_dict(self) -> dict:
        return {"format": FORMAT, "delta": self.delta, "accountant": self.accountant,
                "mechanisms": [asdict(m) for m in self.mechanisms]}

    def load_state_dict(self, state: dict, source: str = "ledger") -> None:
        """Continues a saved ledger; another accountant or delta is refused (the epsilon would not be
        the same quantity)."""
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise PrivacyLedgerError(f"{source}: not a privacy ledger (format {found!r}, expected {FORMAT!r})")
        diffs = [f"{key}: {state.get(key)!r} -> {now!r}" for key, now in
                 (("accountant", self.accountant), ("delta", self.delta)) if state.get(key) != now]
        if diffs:
            raise PrivacyLedgerError(f"{source}: the saved ledger differs in {'; '.join(diffs)}; continue it with "
                                     "the settings it was started with")
        try:
            mechanisms = [Mechanism(str(m["name"]), float(m["sigma"]), float(m["q"]), int(m["steps"]))
                          for m in state["mechanisms"]]
        except (KeyError, TypeError, ValueError) as e:
            raise PrivacyLedgerError(f"{source}: a mechanism in the saved ledger is malformed ({e})") from None
        for m in mechanisms:
            check_mechanism(m.sigma, m.q, m.steps)
        self.mechanisms = mechanisms

    def record_summary(self) -> dict:
        """The numbers a privacy record states (strict-JSON plain data); the record's owner adds its own
        mechanism's sigma and q (the ledger cannot tell which of its mechanisms is the main one)."""
        return {"epsilon": self.epsilon(), "delta": self.delta, "accountant": self.accountant,
                "opacus_version": opacus_version(),
                "mechanisms": [asdict(m) for m in self.mechanisms], "steps": self.steps()}
