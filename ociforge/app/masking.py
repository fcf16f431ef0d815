"""Mask every occurrence of many strings at once, in time linear in the input.

Replacing each of V values in each of H texts costs V x H searches (60,000
dropped values over 55,000 history entries took minutes); a regular expression
alternation of the values is no better (Python's engine tries every
alternative at every position), and the C Aho-Corasick libraries measured
(pyahocorasick's ``iter``/``iter_long``, the Rust crate's leftmost-longest
search) turn quadratic on hostile inputs such as one long value that almost
matches everywhere.  This is the Aho-Corasick automaton itself: building it is
linear in the total length of the values, scanning a text linear in the text.

What is masked is the union of all occurrences: every character that lies
inside an occurrence of any value, overlapping ones included, and each maximal
run of such characters becomes one mask.  (Masking only the leftmost-longest
occurrence would leave the tail of a value that overlaps it in plain sight.)
For that union, each state of the automaton records the length of the longest
value that ends there (its own, or the one its failure link leads to), so one
step per character gives the longest occurrence ending at that character.
"""

from __future__ import annotations

from collections.abc import Iterable

_SHIFT = 21  # code points fit in 21 bits: a transition is one int key (state, char)


class Masker:
    """The automaton of a set of values (empty ones are ignored)."""

    def __init__(self, values: Iterable[str]):
        words = sorted({v for v in values if v})
        goto: dict[int, int] = {}
        fail = [0]
        longest = [0]           # the longest value that is a suffix of the state's text
        # Built one depth at a time (breadth first), so that a state's failure link,
        # which is always shallower, is complete when the state is made.
        states = [0] * len(words)
        active = list(range(len(words)))
        depth = 0
        while active:
            depth += 1
            still = []
            for index in active:
                word = words[index]
                parent = states[index]
                char = ord(word[depth - 1])
                child = goto.get((parent << _SHIFT) | char)
                if child is None:
                    child = len(fail)
                    goto[(parent << _SHIFT) | char] = child
                    link = 0
                    if parent:
                        link = fail[parent]
                        while True:
                            target = goto.get((link << _SHIFT) | char)
                            if target is not None:
                                link = target
                                break
                            if not link:
                                break
                            link = fail[link]
                    fail.append(link)
                    longest.append(longest[link])
                if len(word) == depth:
                    longest[child] = depth
                else:
                    states[index] = child
                    still.append(index)
            active = still
        self._goto = goto
        self._fail = fail
        self._longest = longest
        self.states = len(fail)
        self.empty = not words

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The covered stretches of ``text`` as sorted, disjoint (start, end) pairs;
        occurrences that overlap or touch are merged."""
        if self.empty:
            return []
        goto = self._goto.get
        fail = self._fail
        longest = self._longest
        state = 0
        out: list[tuple[int, int]] = []
        for end, char in enumerate(text, 1):
            code = ord(char)
            while True:
                target = goto((state << _SHIFT) | code)
                if target is not None:
                    state = target
                    break
                if not state:
                    break
                state = fail[state]
            length = longest[state]
            if length:
                start = end - length
                while out and start <= out[-1][1]:
                    start = min(start, out[-1][0])
                    out.pop()
                out.append((start, end))
        return out

    def mask(self, text: str, mask: str) -> str:
        """``text`` with every covered stretch replaced by ``mask``."""
        spans = self.spans(text)
        if not spans:
            return text
        parts = []
        pos = 0
        for start, end in spans:
            parts.append(text[pos:start])
            parts.append(mask)
            pos = end
        parts.append(text[pos:])
        return "".join(parts)
