"""The demo's sample company, as data: which team calls which model how often, and when.

Why a pure plan: the demo runs its traffic in several worker processes, and
the tests check the result against what was planned. A deterministic plan
(same ``calls``, ``days``, ``seed`` and anchor time -> same traces) lets each
worker rebuild it and take its share (no pickling of 10,000 traces), and
keeps the runaway agent, the unpriced model and the untagged job in every
run, however small.

Nothing here talks to a network or to OpenTelemetry: :mod:`.services` turns a
:class:`TracePlan` into real client calls and spans.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "FEATURES",
    "MIN_CALLS",
    "RUNAWAY_ROUNDS",
    "Chat",
    "Embed",
    "Feature",
    "PlannedOutcome",
    "TracePlan",
    "VectorSearch",
    "build_plan",
]

DAY_NS = 86_400 * 1_000_000_000
MINUTE_NS = 60 * 1_000_000_000
#: tool rounds of the runaway agent (a typical run of its feature takes 1-4)
RUNAWAY_ROUNDS = 45


@dataclass(frozen=True, slots=True)
class Chat:
    """One chat call. ``provider`` picks the client: ``openai`` or ``anthropic``.

    Token counts are what the stub provider reports back (the demo chooses
    them; a real provider would count them). ``input_tokens`` INCLUDES the
    cached ones (GenAI semconv meaning); the anthropic client is sent the
    split its API uses.
    """

    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    #: offer tools, and run this tool on the tool call the answer carries
    tool: str | None = None


@dataclass(frozen=True, slots=True)
class Embed:
    model: str
    tokens: int
    inputs: int = 1


@dataclass(frozen=True, slots=True)
class VectorSearch:
    db_system: str
    collection: str
    top_k: int


Step = Chat | Embed | VectorSearch


@dataclass(frozen=True, slots=True)
class PlannedOutcome:
    """A business outcome of a trace (``spanledger.outcome``): recorded at the end of the
    run, or ``later_ns`` after the run began by a webhook in a trace of its own that
    names the run (a CRM reporting a conversion)."""

    name: str
    value: int = 1
    later_ns: int | None = None


@dataclass(frozen=True, slots=True)
class TracePlan:
    """One user request (or job run): its owner, its time and its calls, in order."""

    index: int
    service: str
    environment: str
    #: span name of the trace's root (a request handler, a job, an agent)
    root_name: str
    team: str
    feature: str
    customer: str
    user: str
    cost_center: str
    #: when the trace pretends to start (ns since the epoch, in the past)
    start_ns: int
    steps: tuple[Step, ...]
    #: set for agent runs: the root is an ``invoke_agent`` span with this agent name
    agent: str | None = None
    runaway: bool = False
    #: what the run achieved (none: the run was waste)
    outcomes: tuple[PlannedOutcome, ...] = ()

    @property
    def provider_calls(self) -> int:
        """Requests this trace sends to the (stub) provider."""
        return sum(1 for s in self.steps if not isinstance(s, VectorSearch))


@dataclass(frozen=True)
class Feature:
    """A use case of the sample company and how one of its requests looks."""

    team: str
    name: str
    service: str
    cost_center: str
    #: share of traces (relative)
    weight: float
    make: Callable[[random.Random], tuple[tuple[Step, ...], str | None, str]] = field(repr=False)
    #: SaaS features bill a customer; internal jobs do not
    customer_facing: bool = True


# --- what one request of each feature does -----------------------------------
def _support_chat(r: random.Random) -> tuple[tuple[Step, ...], str | None, str]:
    # A long, stable system prompt: OpenAI caches its first 1,024+ tokens.
    turns = r.choice((1, 1, 2, 2, 3))
    steps = []
    for t in range(turns):
        prompt = r.randint(1_400, 3_200) + 400 * t
        cached = 1_024 + 128 * r.randint(0, 6) if r.random() < 0.7 else 0
        cached = min(cached, prompt - prompt % 128)  # OpenAI caches whole 128-token blocks
        steps.append(Chat("openai", "gpt-4o-mini", prompt, r.randint(120, 420), cached))
    return tuple(steps), None, "POST /support/chat"


def _agent_steps(r: random.Random, model: str, tools: tuple[str, ...], rounds: int,
                 base: int, growth: int) -> tuple[Step, ...]:
    """Tool loop: each round sends the grown conversation back (context is re-sent)."""
    steps: list[Step] = []
    for i in range(rounds):
        prompt = base + growth * i + r.randint(0, 300)
        steps.append(Chat("openai", model, prompt, r.randint(60, 180), tool=tools[i % len(tools)]))
    final = base + growth * rounds + r.randint(0, 300)
    steps.append(Chat("openai", model, final, r.randint(200, 450)))
    return tuple(steps)


def _ticket_triage(r: random.Random) -> tuple[tuple[Step, ...], str | None, str]:
    rounds = r.choice((1, 2, 2, 2, 3, 3, 4))
    steps = _agent_steps(r, "gpt-4o", ("lookup_ticket", "search_kb"), rounds, 2_400, 900)
    return steps, "triage-agent", "invoke_agent triage-agent"


def _lead_research(r: random.Random) -> tuple[tuple[Step, ...], str | None, str]:
    rounds = r.choice((2, 3, 3, 4, 5))
    steps = _agent_steps(r, "gpt-4o-mini", ("web_search",), rounds, 1_800, 1_400)
    return steps, "research-agent", "invoke_agent research-agent"


def _docs_qa(r: random.Random) -> tuple[tuple[Step, ...], str | None, str]:
    # RAG: embed the question, search the vector DB, answer with retrieved context.
    # The instructions block is cached by Anthropic (read at 10% of input price).
    cached = r.choice((0, 2_048, 4_096, 4_096))
    fresh = r.randint(1_500, 4_500)
    return (
        Embed("text-embedding-3-small", r.randint(12, 60)),
        VectorSearch("qdrant", "product-docs", 8),
        Chat("anthropic", "claude-sonnet-4-5", fresh + cached, r.randint(200, 600),
             cache_read_tokens=cached),
    ), None, "POST /search/answer"


def _semantic_search(r: random.Random) -> tuple[tuple[Step, ...], str | None, str]:
    return (
        Embed("text-embedding-3-small", r.randint(6, 40)),
        VectorSearch("qdrant", "catalog", 20),
    ), None, "GET /search"


def _email_drafts(r: random.Random) -> tuple[tuple[Step, ...], str | None, str]:
    # Tone guide cached per customer: the first draft writes the cache, later ones read it.
    write = r.random() < 0.25
    guide = 1_500
    fresh = r.randint(300, 1_200)
    return (Chat("anthropic", "claude-haiku-4-5", fresh + guide, r.randint(250, 700),
                 cache_read_tokens=0 if write else guide,
                 cache_write_tokens=guide if write else 0),), None, "POST /sales/draft"


def _contract_summarizer(r: random.Random) -> tuple[tuple[Step, ...], str | None, str]:
    return (Chat("openai", "acme-llama-3.1-70b", r.randint(6_000, 14_000),
                 r.randint(500, 900)),), None, "job summarize-contract"


def _intent_classifier(r: random.Random) -> tuple[tuple[Step, ...], str | None, str]:
    # A custom fine-tune nobody has priced yet: visible as `unpriced`.
    return (Chat("openai", "acme-intent-ft-v2", r.randint(150, 400), r.randint(1, 8)),), None, (
        "POST /classify")


def _reindex(r: random.Random) -> tuple[tuple[Step, ...], str | None, str]:
    # A nightly job nobody tagged: its spend must show as "(unattributed)".
    return (Embed("text-embedding-3-small", r.randint(4_000, 9_000), inputs=16),), None, (
        "job reindex-catalog")


FEATURES: tuple[Feature, ...] = (
    Feature("support", "support-chat", "support-api", "CC-1010", 26, _support_chat),
    Feature("support", "ticket-triage", "support-api", "CC-1010", 9, _ticket_triage),
    Feature("search", "docs-qa", "search-api", "CC-2020", 14, _docs_qa),
    Feature("search", "semantic-search", "search-api", "CC-2020", 22, _semantic_search),
    Feature("sales", "email-drafts", "sales-assist", "CC-3030", 10, _email_drafts),
    Feature("sales", "lead-research", "sales-assist", "CC-3030", 4, _lead_research,
            customer_facing=False),
    Feature("ml-platform", "contract-summarizer", "doc-pipeline", "CC-4040", 5,
            _contract_summarizer),
    Feature("ml-platform", "intent-classifier", "doc-pipeline", "CC-4040", 8, _intent_classifier),
    Feature("", "", "doc-pipeline", "", 1, _reindex, customer_facing=False),
)

#: feature -> (outcome recorded at the end of a run that succeeds, share of runs that do)
OUTCOMES: dict[str, tuple[str, float]] = {
    "support-chat": ("conversation_resolved", 0.72),
    "ticket-triage": ("ticket_resolved", 0.78),
    "docs-qa": ("answer_accepted", 0.55),
    "contract-summarizer": ("contract_summarized", 0.97),
}
#: share of sales email drafts that end in a conversion, which the CRM reports 1-48
#: hours later (a webhook in a trace of its own, naming the run)
CONVERSION_RATE = 0.10
HOUR_NS = 60 * MINUTE_NS

CUSTOMERS: tuple[tuple[str, float], ...] = (
    ("acme-corp", 30), ("globex", 18), ("initech", 12), ("umbrella", 10), ("hooli", 9),
    ("stark-industries", 8), ("wayne-enterprises", 6), ("soylent", 4), ("tyrell", 3),
)
#: users of the largest customer; the others have fewer, in proportion to their weight
MAX_USERS = 60


def _user(customer: str, draw: int) -> str:
    """One of the customer's own users (``globex/u-007``): users belong to a customer."""
    weight = dict(CUSTOMERS)[customer]
    pool = max(2, round(MAX_USERS * weight / CUSTOMERS[0][1]))
    return f"{customer}/u-{(draw - 1) % pool + 1:03d}"


#: a plan smaller than this cannot hold every feature once plus the runaway
MIN_CALLS = 100


def build_plan(calls: int, days: int, seed: int, anchor_ns: int) -> list[TracePlan]:
    """Traces totalling at least ``calls`` provider calls, spread over the ``days``
    calendar days (UTC) that end with the day of ``anchor_ns`` (all before ``anchor_ns``).

    Every feature appears at least once, then the runaway agent run, then
    weighted random traces until the call budget is spent. Traffic grows over
    the window and dips at weekends, so the daily chart looks like a real one.
    """
    if calls < MIN_CALLS:
        raise ValueError(f"calls must be >= {MIN_CALLS}, got {calls}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    r = random.Random(seed)
    # outcomes draw from their own stream: the traffic (and the bills written from it)
    # stays what it was before the demo recorded outcomes
    luck = random.Random(seed * 7_919 + 1)
    names, cweights = zip(*CUSTOMERS, strict=True)
    weights = [f.weight for f in FEATURES]
    first_day_ns = (anchor_ns // DAY_NS - days + 1) * DAY_NS
    day_weights = [_day_weight(first_day_ns + d * DAY_NS, d, days) for d in range(days)]
    plans: list[TracePlan] = []
    total = 0
    uncovered = iter(range(days))

    def add(feature: Feature, steps: tuple[Step, ...], agent: str | None, root: str,
            day: int | None = None, runaway: bool = False) -> None:
        nonlocal total
        index = len(plans)
        if day is None:
            # the first traces cover every day once, so short runs still span the window
            day = next(uncovered, None)
            if day is None:
                day = r.choices(range(days), day_weights)[0]
        # Calendar days (UTC) ending today: day 0 is the oldest; today's traces stay before
        # the anchor (now), so a report of the current month right after the demo shows them.
        day_ns = first_day_ns + day * DAY_NS
        if day == days - 1:
            start = day_ns + int(r.random() * max(anchor_ns - day_ns - MINUTE_NS, 0))
        else:
            start = day_ns + int(r.triangular(0.25, 0.95, 0.6) * DAY_NS)
        customer = r.choices(names, cweights)[0] if feature.customer_facing else ""
        outcomes = () if runaway else _outcomes(luck, feature.name, start, anchor_ns)
        plans.append(TracePlan(
            index=index, service=feature.service,
            environment="staging" if r.random() < 0.04 else "production",
            root_name=root, team=feature.team, feature=feature.name, customer=customer,
            user=_user(customer, r.randint(1, 60)) if feature.customer_facing else "",
            cost_center=feature.cost_center, start_ns=start, steps=steps, agent=agent,
            runaway=runaway, outcomes=outcomes,
        ))
        total += plans[-1].provider_calls

    for feature in FEATURES:
        add(feature, *feature.make(r))
    triage = next(f for f in FEATURES if f.name == "ticket-triage")
    runaway_steps = _agent_steps(r, "gpt-4o", ("lookup_ticket", "search_kb"), RUNAWAY_ROUNDS,
                                 2_400, 900)
    add(triage, runaway_steps, "triage-agent", "invoke_agent triage-agent",
        day=max(days - 3, 0), runaway=True)
    while total < calls:
        feature = r.choices(FEATURES, weights)[0]
        add(feature, *feature.make(r))
    return plans


def _outcomes(luck: random.Random, feature: str, start_ns: int,
              anchor_ns: int) -> tuple[PlannedOutcome, ...]:
    """What one run of ``feature`` achieved; the runaway achieves nothing (pure waste).

    A sales email draft converts now and then; the CRM says so hours later, and a
    conversion that would be reported after ``anchor_ns`` (now) has not happened yet.
    """
    rule = OUTCOMES.get(feature)
    draw, delay = luck.random(), luck.uniform(1, 48)
    if feature == "email-drafts":
        later = int(delay * HOUR_NS)
        if draw < CONVERSION_RATE and start_ns + later < anchor_ns - MINUTE_NS:
            return (PlannedOutcome("conversion", later_ns=later),)
        return ()
    if rule is None or draw >= rule[1]:
        return ()
    return (PlannedOutcome(rule[0]),)


def _day_weight(day_ns: int, day: int, days: int) -> float:
    """Growth from 0.6x to 1.4x over the window; weekends at half traffic."""
    growth = 0.6 + 0.8 * (day / max(days - 1, 1))
    weekday = (day_ns // DAY_NS + 3) % 7  # Monday = 0; 1970-01-01 was a Thursday
    return growth * (0.5 if weekday >= 5 else 1.0)
