"""The Datadog pack (deploy/datadog): every JSON file is read with Datadog's own API client
models (datadog-api-client: v1 Dashboard, v1 Monitor), the strict way, plus the checks those
models cannot make (metric names, template variables, monitor queries, layout).

    python3 -m unittest discover -s deploy/datadog/tests -v

`scripts/setup --all` installs the pinned datadog-api-client into target/pydeps, which this
file puts first on sys.path; an installed copy elsewhere is used when that folder is absent.
Without the client the model tests FAIL (they are not skipped): CI installs it.

Strict, because the client itself is lenient by design: it reads whatever a newer server may
send, so an unknown widget type becomes an `UnparsedObject`, a value outside an enum is
flagged `_unparsed` instead of raised, and an unknown key is kept as an "additional
property". `strict_load` deserialises as the client reads an API response
(`ApiClient.deserialize`, type checks on) and then walks the result, rejecting every one of
those, and a null where the schema does not allow one; the mutation tests show that each kind
of mistake fails.
"""

import copy
import json
import re
import sys
import unittest
from pathlib import Path

PACK = Path(__file__).resolve().parent.parent
ROOT = PACK.parent.parent
PYDEPS = ROOT / "target" / "pydeps"
TELEMETRY = ROOT / "crates" / "telemetry" / "src" / "lib.rs"
DASHBOARD = PACK / "dashboard.json"
MONITORS = PACK / "monitors"

if PYDEPS.is_dir():
    sys.path.insert(0, str(PYDEPS))

try:
    from datadog_api_client import ApiClient, Configuration
    from datadog_api_client.version import __version__ as CLIENT_VERSION
    from datadog_api_client.model_utils import (
        ModelComposed,
        ModelNormal,
        ModelSimple,
        OpenApiModel,
        UnparsedObject,
        data_to_dict,
        none_type,
        validate_and_convert_types,
    )
    from datadog_api_client.v1.model.dashboard import Dashboard
    from datadog_api_client.v1.model.monitor import Monitor

    CLIENT_ERROR = None
except ImportError as exc:  # a failure, not a skip: see setUpClass
    CLIENT_ERROR = (
        f"datadog-api-client cannot be imported ({exc}) with {sys.executable}. "
        f"Run `scripts/setup --all`: it installs the pinned version into {PYDEPS}, "
        "which this test puts on sys.path."
    )

# Metrics of Datadog's own integrations that the pack may query: the agent's container
# check (container.cpu.usage in nanocores, memory in bytes) and the NGINX check.
INTEGRATION_METRICS = frozenset(
    {
        "container.cpu.usage",
        "container.memory.usage",
        "container.memory.rss",
        "nginx.net.request_per_s",
        "nginx.net.connections",
    }
)
# Space aggregators a metric query may start with (percentiles: distributions only).
SPACE_AGGREGATORS = frozenset({"avg", "sum", "min", "max", "count", "p50", "p75", "p90", "p95", "p99"})
# Template variables a monitor message may use besides the query's groups ({{env.name}}).
MESSAGE_VARIABLES = frozenset(
    {
        "value",
        "threshold",
        "warn_threshold",
        "last_triggered_at",
        "is_alert",
        "is_warning",
        "is_recovery",
        "is_alert_recovery",
        "is_warning_recovery",
        "is_no_data",
    }
)
MONITOR_QUERY = re.compile(
    r"^(?P<time_agg>avg|sum|min|max)\((?P<window>last_\d+[mhdw])\):(?P<expr>.+?)"
    r"\s+(?P<op>>=|<=|>|<)\s+(?P<bound>-?\d+(?:\.\d+)?)$"
)


def telemetry_metrics():
    """The names in crates/telemetry's `names` module (the project's one vocabulary), each
    with its doc comment (which says `distribution` for the distributions)."""
    src = TELEMETRY.read_text(encoding="utf-8")
    block = re.search(r"pub mod names \{(.*?)\n\}", src, re.S)
    if block is None:
        raise AssertionError(f"no `pub mod names {{ … }}` in {TELEMETRY}")
    found = re.findall(r'((?:[ \t]*///[^\n]*\n)*)[ \t]*pub const [A-Z0-9_]+: &str = "([^"]+)";', block.group(1))
    if len(found) < 5:
        raise AssertionError(f"only {[n for _, n in found]} found in the names module of {TELEMETRY}")
    return {name: doc for doc, name in found}


def telemetry_metric_names():
    return frozenset(telemetry_metrics())


def distribution_metrics():
    return frozenset(n for n, doc in telemetry_metrics().items() if "distribution" in doc)


def known_metrics():
    return telemetry_metric_names() | INTEGRATION_METRICS


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def monitor_files():
    return sorted(MONITORS.glob("*.json"))


# ---------------------------------------------------------------------------------------
# Strict reading with the client's models


class Rejected(AssertionError):
    """The client's models reject a document; `problems` says where and why."""

    def __init__(self, what, problems):
        self.problems = problems
        super().__init__(f"{what} rejected by datadog-api-client {CLIENT_VERSION}:\n  " + "\n  ".join(problems))


def _model_classes(expected):
    return [t for t in expected if isinstance(t, type) and issubclass(t, OpenApiModel)]


def _inner_types(expected, container):
    """The element types of a list ([T]) or dict ({str: (T,)}) entry in an openapi_types tuple."""
    inner = []
    for t in expected:
        if container is list and isinstance(t, list):
            inner.extend(t)
        elif container is dict and isinstance(t, dict):
            for v in t.values():
                inner.extend(v)
    return tuple(inner)


def _discriminator(composed):
    """`type` value -> the oneOf members that pin it, for a composed schema whose members
    each pin `type` (WidgetDefinition); {} when one does not."""
    out = {}
    for member in composed._composed_schemas.get("oneOf", ()):
        if isinstance(member, type) and issubclass(member, ModelComposed):
            kinds = list(_discriminator(member))  # a oneOf of its own (TopologyMapWidgetDefinition)
        elif isinstance(member, type) and issubclass(member, ModelNormal):
            kind = member.openapi_types.get("type")
            kind = kind[0] if kind else None
            if not (isinstance(kind, type) and issubclass(kind, ModelSimple)):
                return {}
            kinds = list(kind.allowed_values)
        else:
            return {}
        if not kinds:
            return {}
        for k in kinds:
            out.setdefault(k, []).append(member)
    return out


def _diagnose(raw, expected, configuration):
    """Why `raw` could not be read as `expected`: the client only says 'unparsed'."""
    classes = _model_classes(expected)
    if not classes:
        return f"{raw!r} is not a {expected}"
    cls = classes[0]
    if issubclass(cls, ModelComposed):
        by_type = _discriminator(cls)
        if by_type and isinstance(raw, dict):
            kind = raw.get("type")
            if kind not in by_type:
                return f"unknown {cls.__name__} type {kind!r} (known: {', '.join(sorted(by_type))})"
            members = by_type[kind]
        else:
            members = [m for m in cls._composed_schemas.get("oneOf", ()) if isinstance(m, type) and issubclass(m, OpenApiModel)]
        if len(members) == 1:
            return _diagnose(raw, tuple(members), configuration)
        reasons = "; ".join(f"{m.__name__}: {_diagnose(raw, (m,), configuration)}" for m in members)
        if len(reasons) > 2000:
            reasons = reasons[:2000] + " …"
        return f"matches none (or several) of {cls.__name__}'s schemas: {reasons}"
    try:
        model = validate_and_convert_types(copy.deepcopy(raw), (cls,), [cls.__name__], True, True, configuration=configuration)
    except Exception as exc:  # the client's own message names the field and the types
        return f"{cls.__name__}: {exc}"
    problems = []
    _walk(model, raw, "", problems, (cls,), configuration)
    return f"{cls.__name__}: " + ("; ".join(problems) if problems else "rejected without a reason")


def _walk(value, raw, path, problems, expected, configuration):
    if isinstance(value, UnparsedObject):
        problems.append(f"{path or '.'}: {_diagnose(raw, expected, configuration)}")
    elif isinstance(value, ModelSimple):
        if value._unparsed:
            allowed = ", ".join(sorted(map(str, value.allowed_values)))
            problems.append(f"{path or '.'}: {value.value!r} is not a {type(value).__name__} ({allowed})")
    elif isinstance(value, ModelComposed):
        members = value._composed_instances
        if value._unparsed or len(members) != 1:
            problems.append(f"{path or '.'}: {_diagnose(raw, (type(value),), configuration)}")
        else:
            _walk(members[0], raw, path, problems, (type(members[0]),), configuration)
    elif isinstance(value, ModelNormal):
        cls = type(value)
        types = value.openapi_types
        for attr, item in value._data_store.items():
            key = value.attribute_map.get(attr, attr)
            where = f"{path}.{key}"
            if attr not in types:
                known = ", ".join(sorted(value.attribute_map.values()))
                problems.append(f"{where}: unknown field {key!r} for {cls.__name__} (known: {known})")
                continue
            if item is None:
                if none_type not in types[attr]:
                    problems.append(f"{where}: null is not allowed for {cls.__name__}.{key}")
                continue
            sub = raw.get(key) if isinstance(raw, dict) else None
            _walk(item, sub, where, problems, types[attr], configuration)
    elif isinstance(value, list):
        inner = _inner_types(expected, list)
        for i, item in enumerate(value):
            sub = raw[i] if isinstance(raw, list) and i < len(raw) else None
            if item is None and none_type not in inner:
                problems.append(f"{path}[{i}]: null is not allowed")
                continue
            _walk(item, sub, f"{path}[{i}]", problems, inner, configuration)
    elif isinstance(value, dict):
        inner = _inner_types(expected, dict)
        for key, item in value.items():
            sub = raw.get(key) if isinstance(raw, dict) else None
            _walk(item, sub, f"{path}.{key}", problems, inner, configuration)


def _differences(a, b, path, out):
    """Where the client's serialisation differs from the file (ints and floats compare by value)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in the {'file' if key in a else 'serialisation'}")
            else:
                _differences(a[key], b[key], f"{path}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items in the file, {len(b)} serialised")
        for i, (x, y) in enumerate(zip(a, b)):
            _differences(x, y, f"{path}[{i}]", out)
    elif isinstance(a, bool) or isinstance(b, bool) or not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        if type(a) is not type(b) or a != b:
            out.append(f"{path}: {a!r} in the file, {b!r} serialised")
    elif a != b:
        out.append(f"{path}: {a!r} in the file, {b!r} serialised")


def strict_load(raw, cls, what=None):
    """`raw` (parsed JSON) as a `cls` model, or Rejected with every problem found."""
    what = what or cls.__name__
    with ApiClient(Configuration()) as client:
        try:
            model = client.deserialize(json.dumps(raw), (cls,), True)
        except Exception as exc:
            raise Rejected(what, [f"{type(exc).__name__}: {exc}"]) from None
        problems = []
        _walk(model, raw, "", problems, (cls,), client.configuration)
    if not isinstance(model, cls):
        problems.append(f".: read as {type(model).__name__}, not {cls.__name__}")
    if not problems:
        _differences(raw, data_to_dict(model), "", problems)
    if problems:
        raise Rejected(what, problems)
    return model


# ---------------------------------------------------------------------------------------
# Checks the models cannot make


def strings(node, keys=None):
    """Every string in a JSON tree (only under `keys` when given), with its path."""
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, str):
                if keys is None or k in keys:
                    yield k, v
            else:
                yield from strings(v, keys)
    elif isinstance(node, list):
        for v in node:
            if isinstance(v, str):
                if keys is None:
                    yield None, v
            else:
                yield from strings(v, keys)


def metric_problems(query, known, distributions=None):
    """Metrics in a query that are unknown, not preceded by a space aggregator, or asked for
    a percentile without being a distribution."""
    if distributions is None:
        distributions = distribution_metrics()
    problems = []
    found = 0
    for m in re.finditer(r"([A-Za-z0-9_]+:)?([A-Za-z][A-Za-z0-9_.]*)\{", query):
        agg, metric = m.group(1), m.group(2)
        if query[: m.start()].endswith("by "):
            continue  # a group-by list, not a metric
        found += 1
        if metric not in known:
            problems.append(f"unknown metric {metric!r} in {query!r}")
        if agg is None or agg[:-1] not in SPACE_AGGREGATORS:
            problems.append(f"{metric!r} without a space aggregator ({', '.join(sorted(SPACE_AGGREGATORS))}:) in {query!r}")
        elif agg[:-1].startswith("p") and metric not in distributions:
            problems.append(f"percentile {agg[:-1]} of {metric!r}, which is not a distribution, in {query!r}")
    if found == 0:
        problems.append(f"no metric in {query!r}")
    return problems


def queries_of(doc):
    return [q for _, q in strings(doc, keys={"query", "q"})]


def template_variable_problems(dash):
    declared = [v["name"] for v in dash.get("template_variables") or []]
    problems = [f"template variable {n!r} declared twice" for n in set(declared) if declared.count(n) > 1]
    used = set()
    for _, text in strings(dash.get("widgets", [])):
        for name in re.findall(r"\$([A-Za-z0-9_]+)", text):
            used.add(name)
            if name not in declared:
                problems.append(f"${name} is used but not declared (declared: {declared}) in {text[:120]!r}")
    for preset in dash.get("template_variable_presets") or []:
        for v in preset.get("template_variables", []):
            if v.get("name") not in declared:
                problems.append(f"preset {preset.get('name')!r} sets undeclared variable {v.get('name')!r}")
    for name in declared:
        if name not in used:
            problems.append(f"template variable {name!r} is declared but no widget uses it")
    return problems


def layout_problems(widgets, where="dashboard"):
    """Fixed layout on a 12-column grid: every widget placed, inside the grid, no overlaps."""
    problems = []
    cells = {}
    for i, w in enumerate(widgets):
        lay = w.get("layout")
        title = w["definition"].get("title") or w["definition"]["type"]
        if lay is None:
            problems.append(f"{where}: widget {i} ({title!r}) has no layout")
            continue
        if lay["x"] < 0 or lay["y"] < 0 or lay["width"] < 1 or lay["height"] < 1 or lay["x"] + lay["width"] > 12:
            problems.append(f"{where}: widget {i} ({title!r}) is outside the 12-column grid: {lay}")
        for x in range(lay["x"], lay["x"] + lay["width"]):
            for y in range(lay["y"], lay["y"] + lay["height"]):
                if (x, y) in cells:
                    problems.append(f"{where}: widget {i} ({title!r}) overlaps widget {cells[(x, y)]} at {(x, y)}")
                    break
                cells[(x, y)] = i
            else:
                continue
            break
        if w["definition"]["type"] == "group":
            inner = w["definition"]["widgets"]
            problems += layout_problems(inner, f"group {title!r}")
            bottom = max((c["layout"]["y"] + c["layout"]["height"] for c in inner if "layout" in c), default=0)
            if lay["height"] < bottom + 1:
                problems.append(f"{where}: group {title!r} is {lay['height']} high, its widgets need {bottom + 1} (title row included)")
    return problems


def monitor_query_problems(monitor, known):
    query = monitor.get("query", "")
    m = MONITOR_QUERY.match(query)
    if m is None:
        return [f"query {query!r} is not of the form `avg(last_5m):<metric query> > N`"]
    problems = metric_problems(m.group("expr"), known)
    thresholds = monitor.get("options", {}).get("thresholds", {})
    bound = float(m.group("bound"))
    critical = thresholds.get("critical")
    if critical is None or float(critical) != bound:
        problems.append(f"query bound {bound:g} != options.thresholds.critical {critical!r}")
    warning = thresholds.get("warning")
    if warning is not None and critical is not None:
        above = m.group("op").startswith(">")
        if (above and not warning < critical) or (not above and not warning > critical):
            problems.append(f"warning {warning} is not on the near side of critical {critical} for {m.group('op')}")
    groups = set()
    for g in re.findall(r"\bby \{([^}]*)\}", m.group("expr")):
        groups.update(t.strip() for t in g.split(","))
    for text in (monitor.get("message", ""), monitor.get("name", "")):
        for var in re.findall(r"\{\{\s*[#/^]?\s*([A-Za-z0-9_.]+)\s*\}\}", text):
            if var.endswith(".name"):
                if var[: -len(".name")] not in groups:
                    problems.append(f"{{{{{var}}}}} needs `by {{{var[:-5]}}}` in the query (groups: {sorted(groups)})")
            elif var not in MESSAGE_VARIABLES:
                problems.append(f"unknown message variable {{{{{var}}}}}")
    return problems


def side_groups(dash):
    return [w for w in dash["widgets"] if w["definition"]["type"] == "group"]


def first_widget(dash, kind):
    """The first widget definition of `kind`, looking inside groups too."""
    for w in dash["widgets"]:
        d = w["definition"]
        if d["type"] == kind:
            return d
        for c in d.get("widgets", []):
            if c["definition"]["type"] == kind:
                return c["definition"]
    raise AssertionError(f"no {kind} widget in the dashboard")


# ---------------------------------------------------------------------------------------
# Tests


class NeedsClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if CLIENT_ERROR:
            raise AssertionError(CLIENT_ERROR)

    def assertRejected(self, raw, cls, *needles):
        """The document is rejected, and the report mentions every needle."""
        with self.assertRaises(Rejected) as ctx:
            strict_load(raw, cls)
        report = str(ctx.exception)
        for needle in needles:
            self.assertIn(needle, report)
        return report


class DashboardModelTest(NeedsClient):
    def setUp(self):
        self.dash = load_json(DASHBOARD)

    def test_dashboard_reads_strictly_as_v1_dashboard(self):
        model = strict_load(self.dash, Dashboard, DASHBOARD.name)
        self.assertEqual(model.layout_type.value, "ordered")
        self.assertTrue(model.widgets)

    def test_dashboard_has_no_read_only_fields(self):
        # What the create API ignores or refuses (an export has them: id, url, author_handle…).
        self.assertEqual(sorted(set(self.dash) & set(Dashboard.read_only_vars)), [])

    def test_rejects_unknown_widget_type(self):
        first_widget(self.dash, "timeseries")["type"] = "timeserie"
        self.assertRejected(self.dash, Dashboard, "unknown WidgetDefinition type 'timeserie'")

    def test_rejects_wrong_type_for_a_field(self):
        first_widget(self.dash, "timeseries")["show_legend"] = "yes"
        self.assertRejected(self.dash, Dashboard, "show_legend")

    def test_rejects_wrong_type_in_a_layout(self):
        self.dash["widgets"][0]["layout"]["width"] = "6"
        self.assertRejected(self.dash, Dashboard, "width")

    def test_rejects_misspelled_field(self):
        d = first_widget(self.dash, "timeseries")
        d["titel"] = d.pop("title")
        self.assertRejected(self.dash, Dashboard, "unknown field 'titel' for TimeseriesWidgetDefinition")

    def test_rejects_misspelled_top_level_field(self):
        self.dash["template_variable"] = self.dash.pop("template_variables")
        self.assertRejected(self.dash, Dashboard, "unknown field 'template_variable' for Dashboard")

    def test_rejects_value_outside_an_enum(self):
        self.dash["layout_type"] = "ordred"
        self.assertRejected(self.dash, Dashboard, "'ordred' is not a DashboardLayoutType")

    def test_rejects_bad_query_data_source(self):
        first_widget(self.dash, "timeseries")["requests"][0]["queries"][0]["data_source"] = "metricz"
        self.assertRejected(self.dash, Dashboard, "queries[0]")

    def test_rejects_missing_required_field(self):
        del first_widget(self.dash, "note")["content"]
        self.assertRejected(self.dash, Dashboard, "content")

    def test_rejects_null_where_not_nullable(self):
        first_widget(self.dash, "timeseries")["title"] = None
        self.assertRejected(self.dash, Dashboard, "null is not allowed for TimeseriesWidgetDefinition.title")


class MonitorModelTest(NeedsClient):
    def test_there_are_monitors(self):
        names = {p.stem for p in monitor_files()}
        for needed in ("proxy-p99-latency", "proxy-upstream-errors", "proxy-memory"):
            self.assertIn(needed, names)

    def test_each_monitor_reads_strictly_as_v1_monitor(self):
        for path in monitor_files():
            with self.subTest(monitor=path.name):
                model = strict_load(load_json(path), Monitor, path.name)
                self.assertIn(model.type.value, ("query alert", "metric alert"))
                self.assertTrue(model.tags)
                self.assertTrue(model.message.strip())

    def test_monitors_have_no_read_only_fields(self):
        for path in monitor_files():
            with self.subTest(monitor=path.name):
                self.assertEqual(sorted(set(load_json(path)) & set(Monitor.read_only_vars)), [])

    def test_rejects_wrong_type_for_threshold(self):
        mon = load_json(monitor_files()[0])
        mon["options"]["thresholds"]["critical"] = "fifty"
        self.assertRejected(mon, Monitor, "critical")

    def test_rejects_unknown_monitor_type(self):
        mon = load_json(monitor_files()[0])
        mon["type"] = "query alarm"
        self.assertRejected(mon, Monitor, "'query alarm' is not a MonitorType")

    def test_rejects_misspelled_option(self):
        mon = load_json(monitor_files()[0])
        mon["options"]["notify_no_dat"] = mon["options"].pop("notify_no_data")
        self.assertRejected(mon, Monitor, "unknown field 'notify_no_dat' for MonitorOptions")


class PackContentTest(unittest.TestCase):
    """What Datadog checks only on import or at query time, checked here."""

    def setUp(self):
        self.dash = load_json(DASHBOARD)
        self.known = known_metrics()

    def test_every_pack_file_is_checked(self):
        files = sorted(p.relative_to(PACK).as_posix() for p in PACK.rglob("*.json"))
        self.assertEqual(files, ["dashboard.json"] + [f"monitors/{p.name}" for p in monitor_files()])

    def test_known_metrics_come_from_the_telemetry_crate(self):
        names = telemetry_metric_names()
        for name in ("tinyfish.app.requests", "tinyfish.proxy.request.duration", "tinyfish.proxy.upstream.errors"):
            self.assertIn(name, names)
        self.assertEqual(
            distribution_metrics(),
            {"tinyfish.app.request.duration", "tinyfish.proxy.request.duration", "tinyfish.proxy.upstream.duration"},
        )

    def test_dashboard_queries_name_known_metrics(self):
        queries = queries_of(self.dash)
        self.assertGreater(len(queries), 20)
        problems = [p for q in queries for p in metric_problems(q, self.known)]
        self.assertEqual(problems, [])

    def test_metric_check_catches_a_renamed_metric(self):
        text = json.dumps(self.dash).replace("tinyfish.proxy.requests", "tinyfish.proxy.request")
        problems = [p for q in queries_of(json.loads(text)) for p in metric_problems(q, self.known)]
        self.assertTrue(any("unknown metric 'tinyfish.proxy.request'" in p for p in problems), problems)

    def test_metric_check_catches_a_missing_aggregator(self):
        self.assertTrue(metric_problems("tinyfish.app.requests{$left}.as_rate()", self.known))
        self.assertTrue(metric_problems("p99:container.memory.rss{$left}", self.known))
        self.assertTrue(metric_problems("p99:tinyfish.app.requests{$left}", self.known))
        self.assertEqual(metric_problems("p99:tinyfish.app.request.duration{$left}", self.known), [])

    def test_template_variables_are_declared_and_used(self):
        self.assertEqual(template_variable_problems(self.dash), [])
        self.assertEqual({v["prefix"] for v in self.dash["template_variables"]}, {"env"})

    def test_template_variable_check_catches_an_undeclared_one(self):
        first_widget(self.dash, "timeseries")["requests"][0]["queries"][0]["query"] = "sum:tinyfish.app.requests{$middle}.as_rate()"
        self.assertTrue(any("$middle" in p for p in template_variable_problems(self.dash)))

    def test_layout_is_placed_on_the_grid(self):
        self.assertEqual(self.dash.get("reflow_type"), "fixed")
        self.assertEqual(layout_problems(self.dash["widgets"]), [])

    def test_sides_mirror_each_other(self):
        # Two groups side by side: the left reads env $left, the right env $right, and
        # they differ in nothing else (a widget added to one side only fails here).
        left, right = side_groups(self.dash)
        self.assertEqual((left["layout"]["x"], right["layout"]["x"]), (0, 6))
        self.assertEqual(left["layout"]["y"], right["layout"]["y"])
        mirrored = json.dumps(left["definition"]["widgets"]).replace("$left", "$right")
        self.assertEqual(json.loads(mirrored), right["definition"]["widgets"])

    def test_every_side_query_is_scoped_by_its_side(self):
        for group, var in zip(side_groups(self.dash), ("$left", "$right")):
            for q in queries_of(group):
                with self.subTest(query=q):
                    self.assertIn(var, q)

    def test_dashboard_covers_the_asked_for_views(self):
        text = json.dumps(self.dash)
        for needle in (
            "container.cpu.usage",  # vCPU per 1000 req/s
            "/ 1000000000) / (req_",  # nanocores to vCPU, per 1000 req/s
            "container.memory.rss",
            "p50:tinyfish.app.request.duration",
            "p99:tinyfish.proxy.request.duration",
            "by {service}",
            "nanocores",  # the units note
            "Metrics > Summary",  # the percentiles note
        ):
            self.assertIn(needle, text)
        self.assertNotIn("container_name", " ".join(queries_of(self.dash)))

    def test_monitor_queries_parse_and_match_their_thresholds(self):
        for path in monitor_files():
            with self.subTest(monitor=path.name):
                self.assertEqual(monitor_query_problems(load_json(path), self.known), [])

    def test_monitor_query_check_catches_mistakes(self):
        mon = load_json(MONITORS / "proxy-p99-latency.json")
        self.assertEqual(mon["query"].split(":")[1], "p99")
        bad = copy.deepcopy(mon)
        bad["options"]["thresholds"]["critical"] = 51
        self.assertTrue(any("!= options.thresholds.critical" in p for p in monitor_query_problems(bad, self.known)))
        bad = copy.deepcopy(mon)
        bad["query"] = bad["query"].replace(" > ", " ")
        self.assertTrue(monitor_query_problems(bad, self.known))
        bad = copy.deepcopy(mon)
        bad["query"] = bad["query"].replace(" by {env}", "")
        self.assertTrue(any("{{env.name}}" in p for p in monitor_query_problems(bad, self.known)))
        bad = copy.deepcopy(mon)
        bad["options"]["thresholds"]["warning"] = 60
        self.assertTrue(any("near side" in p for p in monitor_query_problems(bad, self.known)))


if __name__ == "__main__":
    unittest.main()
