"""``--model hybrid --hybrid FILE``: a chargeback rule per deployment environment, from YAML.

FinOps teams usually show experiments and dev spend without charging it
(showback) and charge production (at cost, or cost plus a markup that funds
the platform). The file maps ``deployment.environment.name`` values to one of
``showback`` (shown, charged nothing), ``chargeback`` (charged at cost) or
``cost-plus`` (charged cost x (1 + markup)); ``default`` covers every other
environment, spans without one included. Loaded through :mod:`spanledger.yamlconf`
(``file:line: key: problem``). Example: ``collector-config/hybrid.example.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from spanledger import yamlconf

RULES = ("showback", "chargeback", "cost-plus")


@dataclass(frozen=True, slots=True)
class Rule:
    model: str
    markup: Decimal = Decimal(0)

    @property
    def label(self) -> str:
        return f"cost-plus {self.markup * 100:f}%" if self.model == "cost-plus" else self.model


@dataclass(frozen=True, slots=True)
class HybridPlan:
    file: str
    environments: dict[str, Rule]
    default: Rule

    def rule(self, environment: str) -> Rule:
        return self.environments.get(environment, self.default)


def _rule(node: yamlconf.Node) -> Rule:
    if not node.is_mapping():
        raise node.error("expected a mapping like {model: cost-plus, markup: 0.15}")
    node.check_keys({"model", "markup"})
    model = node.get_str("model", required=True)
    if model not in RULES:
        raise node.error(f"expected one of: {', '.join(RULES)}, got {model!r}", key="model")
    markup = node.get_decimal("markup", None, minimum=Decimal(0))
    if model == "cost-plus" and markup is None:
        raise node.error("cost-plus needs a markup (0.15 = 15%)", key="markup")
    if model != "cost-plus" and markup is not None:
        raise node.error(f"markup applies to cost-plus only, not {model}", key="markup")
    if markup is not None and markup > 1:  # 15 is a 15% without its sign, not 1500%
        raise node.error(f"markup is a fraction (0.15 = 15%), at most 1; got {markup}",
                         key="markup")
    return Rule(model, markup or Decimal(0))


def load_hybrid(path: str | Path) -> HybridPlan:
    root = yamlconf.load(path)
    if not root.is_mapping():
        raise root.error("expected a mapping with 'environments' and 'default'")
    root.check_keys({"environments", "default"})
    envs = root.child("environments")
    if not envs.is_mapping():
        raise envs.error("expected a mapping environment -> {model: ..., markup: ...}")
    environments = {name: _rule(node) for name, node in envs.items()}
    if not environments:
        raise envs.error("name at least one environment")
    default = _rule(root.child("default")) if root.has("default") else Rule("chargeback")
    return HybridPlan(str(path), environments, default)
