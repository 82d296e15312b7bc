"""The classic Prometheus text format (0.0.4) of perfd's metric families, byte for byte what
``prometheus_client.generate_latest`` writes for them, in about a third of its time.

Why perfd has its own: a scrape of a machine with 5,000 series renders ~34,000 samples, and
``generate_latest`` escapes and sorts every sample's labels anew (~4.5 us per sample here,
152 ms per scrape; benchmarks/bench_metrics_scrape.py). Most label values recur across many
samples (a series' suite, benchmark and metric in its four statistics, CV and reference
ratio), so this writer escapes a label value or label set once per scrape.

The benchmark families are RowGauges: rows of label values rather than Sample objects, so
a scrape builds no object per sample and writes each row from label texts escaped once.
It covers what perfd's collector yields: gauges, counters, histograms and info families,
without timestamps, exemplars or OpenMetrics-only samples (``_created``, ``_gsum``,
``_gcount``); a sample with one of those raises ValueError rather than being written
differently from ``generate_latest``. ``tests/unit/test_daemon_exposition.py`` holds the two
to the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client.core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

# The classic format's names for the types whose OpenMetrics name differs.
_TYPE = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram",
         "unknown": "untyped"}
_SUFFIX = {"counter": "_total", "info": "_info"}
_OPENMETRICS_ONLY = ("_created", "_gsum", "_gcount")


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _Written(dict[str, str]):
    """One label's values as written (``name="escaped value"``), each escaped once."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def __missing__(self, value: str) -> str:
        text = self[value] = f'{self.name}="{_escape_value(value)}"'
        return text


class RowGauge(Metric):
    """A gauge family kept as rows rather than Sample objects: what the collector builds for
    the thousands of benchmark samples of a scrape. A row is the values of ``label_names``
    and either one value, or (with ``varying``, one more label) several (varying label value,
    value) samples: a series' statistics. ``samples`` makes Sample objects on demand
    (generate_latest, parsers, tests); encode() writes the rows without them, each distinct
    label value escaped once and a row's shared labels once per row."""

    def __init__(self, name: str, documentation: str, label_names: Sequence[str], *,
                 varying: str | None = None) -> None:
        self._rows: list[tuple[tuple[str, ...], tuple[tuple[str, float], ...]]] = []
        super().__init__(name, documentation, "gauge")
        self.label_names = tuple(label_names)
        self.varying = varying
        self._lines: list[str] | None = None  # written once: the rows are final by then

    @property
    def samples(self) -> list[Sample]:
        out = []
        for values, samples in self._rows:
            labels = dict(zip(self.label_names, values, strict=True))
            for label_value, value in samples:
                extra = {self.varying: label_value} if self.varying else {}
                out.append(Sample(self.name, {**labels, **extra}, value))
        return out

    @samples.setter
    def samples(self, value: list[Sample]) -> None:  # Metric.__init__ sets []
        if value:
            raise TypeError("RowGauge: add rows with add_row, not samples")

    def add_row(self, values: tuple[str, ...], value: float) -> None:
        """One sample (a family without ``varying``). Raises RuntimeError once written."""
        self.add_series(values, (("", value),))

    def add_series(self, values: tuple[str, ...], samples: tuple[tuple[str, float], ...]) -> None:
        """Several samples that differ in the ``varying`` label only. Raises RuntimeError
        once written."""
        if self._lines is not None:
            raise RuntimeError(f"RowGauge {self.name}: rows added after it was written")
        self._rows.append((values, samples))

    def write(self, out: list[str]) -> None:
        """Append this family's sample lines to ``out``, labels sorted by name as
        generate_latest writes them; a family written before (kept between scrapes) appends
        the same lines again."""
        if self._lines is None:
            lines: list[str] = []
            self._write(lines)
            self._lines = lines
        out.extend(self._lines)

    def _write(self, out: list[str]) -> None:
        names = self.label_names
        order = sorted(range(len(names)), key=names.__getitem__)
        written = [_Written(names[i]) for i in order]
        look = _Written.__getitem__
        # where the varying label sits among the sorted names: the row's labels before it
        # and after it are written once per row
        split = sum(name < self.varying for name in names) if self.varying else len(order)
        varying = _Written(self.varying or "")
        line = f"{self.name}{{{{{{}}}}}} {{}}\n".format
        for values, samples in self._rows:
            fixed = list(map(look, written, [values[i] for i in order]))
            if self.varying is None:
                out.append(line(",".join(fixed), _value(samples[0][1])))
                continue
            head = ",".join(fixed[:split])
            tail = ",".join(fixed[split:])
            for label_value, value in samples:
                text = ",".join(part for part in (head, varying[label_value], tail) if part)
                out.append(line(text, _value(value)))


def _value(value: float) -> str:
    """floatToGoString, with its common case (a finite float under 1e6 or in exponent form)
    inline."""
    text = repr(float(value))
    if text[-1] in "fn" or (value > 0 and text.find(".") > 6):  # inf, nan; Go's exponents
        return floatToGoString(value)
    return text


def encode(families: Iterable[Metric]) -> bytes:
    """The text exposition of ``families`` (e.g. ``registry.collect()``). Raises ValueError
    for a sample this writer does not cover (see the module doc)."""
    out: list[str] = []
    label_text: dict[tuple[tuple[str, str], ...], str] = {}  # a label set, as written
    for metric in families:
        name = metric.name + _SUFFIX.get(metric.type, "")
        help_text = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {_TYPE.get(metric.type, metric.type)}\n")
        if isinstance(metric, RowGauge):
            metric.write(out)
            continue
        for sample in metric.samples:
            if sample.timestamp is not None or sample.exemplar is not None or (
                    sample.name.startswith(metric.name)
                    and sample.name[len(metric.name):] in _OPENMETRICS_ONLY):
                raise ValueError(f"exposition: sample {sample.name} has a timestamp, an exemplar "
                                 "or is OpenMetrics-only; perfd's writer does not cover it")
            if not sample.labels:
                out.append(f"{sample.name} {_value(sample.value)}\n")
                continue
            key = tuple(sample.labels.items())
            text = label_text.get(key)
            if text is None:
                text = label_text[key] = ",".join(
                    f'{k}="{_escape_value(v)}"' for k, v in sorted(key))
            out.append(f"{sample.name}{{{text}}} {_value(sample.value)}\n")
    return "".join(out).encode("utf-8")
