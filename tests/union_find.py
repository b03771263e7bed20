"""Connected components by union-find, for the tests' brute-force checks (no graph library)."""
from __future__ import annotations

from collections.abc import Iterable


def components(n: int, links: Iterable[tuple[int, int]]) -> list[set[int]]:
    """The connected components of items 0..n-1 joined by links (pairs of items)."""
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in links:
        parent[find(a)] = find(b)
    groups: dict[int, set[int]] = {}
    for k in range(n):
        groups.setdefault(find(k), set()).add(k)
    return list(groups.values())
