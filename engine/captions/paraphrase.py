"""Rule-based paraphrases of an analysed caption, one function per kind.

Every rule keeps each content word (or swaps it for a lexicon synonym, or for another form of
the same verb in the passive) so the meaning stays; a rule that is not sure leaves the caption
alone rather than guess.
"""

from __future__ import annotations

from typing import Callable

from .negate import Tokens, be_for, copula_complement, join_list, meta_object, meta_objects, there_is
from .parse import (CLOSE_UP_PREFIXES, DETERMINERS, LOCATION_PREPOSITIONS, META_NOUNS,
                    PICTURE_PREFIXES, PREPOSITIONS, RELATIVES, Caption)

INDEFINITE = DETERMINERS - frozenset("the this that these those his her their its my our your".split())

SHOWING = ["an", "image", "showing"]


def synonym(c: Caption) -> list[Tokens]:
    """Every word or phrase with a lexicon synonym, swapped ('a large red circle' -> 'a big red
    circle'); a word used as a verb ('to cross') keeps its form."""
    out, i, changed = [], 0, False
    while i < c.n:
        for size in (3, 2, 1):
            phrase = " ".join(c.low[i:i + size])
            if i + size <= c.n and phrase in c.lex.synonyms and not _verb_use(c, i, size):
                words = c.lex.synonyms[phrase][0].split()
                if words[-1] == c.word(i + size) or (out and words[0] == out[-1].lower()):
                    continue  # "remote control" stays, not "remote control control"
                out.extend(words)
                i += size
                changed = True
                break
        else:
            out.append(c.toks[i])
            i += 1
    return [out] if changed else []


def _verb_use(c: Caption, i: int, size: int) -> bool:
    """A noun synonym where the word is used as a verb ("to cross", "people drink")."""
    if size > 1 or c.low[i] not in c.lex.noun_synonyms:
        return False
    return c.word(i - 1) == "to" or (c.verb_type(i) is not None and c.low[i] not in c.lex.adjectives)


def template(c: Caption) -> list[Tokens]:
    """Reframe: 'a photo of X' <-> 'an image showing X', 'X' -> 'an image showing X' or 'a photo
    in which X', 'this image features X' -> 'a picture showing X'."""
    t = c.toks
    for prefix in PICTURE_PREFIXES:
        if tuple(c.low[:len(prefix)]) == prefix and c.body:
            if prefix in CLOSE_UP_PREFIXES:
                new = ["a", "close", "up", "photo", "of"]
            elif "showing" in prefix or "shows" in prefix:
                new = ["a", "photo", "of"]
            else:
                new = SHOWING
            return [new + t[len(prefix):]]
    if c.existential:  # "there is a dog on a bench" -> "an image showing a dog on a bench"
        return [] if c.low[2] == "no" else [SHOWING + t[2:]]
    obj = meta_object(c)
    if obj is not None:  # "this image features X" (but not "the black and white photo shows X")
        return [["a", "picture", "showing"] + t[obj.start:]] if c.subject.end - c.subject.det_end == 1 else []
    v, s = c.verb, c.subject
    if c.vtype in (None, "participle") or c.low[v - 1] in RELATIVES:
        return [SHOWING + t]  # also "a group of dogs that are standing in the grass"
    if c.vtype == "aux" and c.low[v] in ("is", "are") and (c.word(v + 1) or "").endswith("ing") \
            and not c.has_verb(v + 2, c.n) and c.low[v - 1] not in RELATIVES:
        return [SHOWING + t[:v] + t[v + 1:]]  # "a dog is sitting" -> "an image showing a dog sitting"
    if s.head is not None and c.low[s.head] in META_NOUNS:
        return []  # not "a photo in which this image does not include a fork"
    return [["a", "photo", "in", "which"] + t]


def existential(c: Caption) -> list[Tokens]:
    """'a dog is sitting on a bench' <-> 'there is a dog sitting on a bench'; 'this image
    features a car' -> 'there is a car in this image'."""
    t, s = c.toks, c.subject
    if _close_up(c):
        return []  # "there is ..." would drop the close-up framing
    if c.existential:
        return [t[2:]]
    if c.conjuncts():
        return [["there", be_for(c, c.chunk(0))] + t]
    if meta_objects(c):
        return there_is(c, deny=False)
    if s.head is None or (s.has_det and c.low[s.start] not in INDEFINITE) or c.word(s.end) == "and" \
            or c.tail_is_predicate() or (c.verb is not None and c.word(c.verb + 1) == "not"):
        return []  # not "there is the door", "there is a man and a woman", "there is a chair not"
    return there_is(c, deny=False)


def _close_up(c: Caption) -> bool:
    return c.body > 0 and tuple(c.low[:c.body]) in CLOSE_UP_PREFIXES


def reorder(c: Caption) -> list[Tokens]:
    """Swap list items or coordinated noun phrases, front a final place phrase ('in a field, a
    zebra is standing'), or swap the clauses around 'but'."""
    t, out = c.toks, []
    spans = c.conjuncts()
    if spans:
        out.append(join_list([t[s:e] for s, e in reversed(spans)]))
    else:
        out.extend(_swap_pair(c))
    pp = c.final_location_pp()
    if pp and pp[0] - c.body >= 2 and not _close_up(c) and not copula_complement(c, pp[0]):
        out.append(t[pp[0]:c.clause_end] + [","] + t[c.body:pp[0]] + t[c.clause_end:])
    if not out:
        out.extend(_modifier_after(c))
    if c.clause_end < c.n and c.verb is not None:
        right = c.clause_end + (1 if c.low[c.clause_end] == "," else 0)
        link = c.low[right]
        if link == "but" and c.has_verb(right + 1, c.n) and not c.tail_is_predicate():
            out.append(t[right + 1:] + [",", "but"] + t[:c.clause_end])
        elif link in ("with", "without"):
            out.append(t[right:] + [","] + t[:c.clause_end])
    return out


def _swap_pair(c: Caption) -> list[Tokens]:
    """'a stove and a sink' -> 'a sink and a stove' when both are plain noun phrases ending the
    first clause, or are the coordinated subject ('a man and a woman are ...')."""
    t = c.toks
    for a in range(c.clause_end - 2, c.body, -1):
        if c.low[a] != "and":
            continue
        right = c.chunk(a + 1)
        subject_pair = c.verb is not None and a < c.verb and right.end == c.verb
        if not (right.end == c.clause_end or subject_pair) or right.head is None:
            return []
        left = a - 1
        while left > c.body and not _boundary(c, left - 1):
            left -= 1
        if left > c.body and c.low[left - 1] in LOCATION_PREPOSITIONS:
            return []  # "a train on its track and some trees": the trees are not under it
        left_chunk = c.chunk(left)
        if (left_chunk.end != a or (subject_pair and left != c.body)
                or left_chunk.has_det != right.has_det or c.low[a - 1] in c.lex.adjectives):
            return []
        return [t[:left] + t[a + 1:right.end] + ["and"] + t[left:a] + t[right.end:]]
    return []


def _modifier_after(c: Caption) -> list[Tokens]:
    """'a white desk is ...' -> 'a desk that is white is ...': the subject's first adjective
    moved into a relative clause."""
    s, t = c.subject, c.toks
    if s.head is None or s.end - s.det_end < 2 or c.existential:
        return []
    adjective = c.low[s.det_end]
    if adjective not in c.lex.predicative or c.low[s.head] in c.lex.adjectives:
        return []
    if s.end < c.n and c.vtype not in ("aux", "finite"):
        return []  # not "a child that is little standing on a field"
    be = be_for(c, s)
    return [t[:s.det_end] + t[s.det_end + 1:s.end] + ["that", be, t[s.det_end]] + t[s.end:]]


def _boundary(c: Caption, i: int) -> bool:
    w = c.low[i]
    return w in (",", "and") or c.preposition_at(i) > 0 or c.verb_type(i) is not None


def voice(c: Caption) -> list[Tokens]:
    """Active <-> passive where safe: 'a man is riding a horse' <-> 'a horse is being ridden by
    a man'; 'this image features a car' <-> 'a car is featured in this image'."""
    return _to_passive(c) or _to_active(c)


def _to_passive(c: Caption) -> list[Tokens]:
    t, v, kind = c.toks, c.verb, c.vtype
    if v is None or c.existential or c.has_cue() or any(w in RELATIVES for w in c.low[:v]):
        return []
    if kind == "aux" and c.low[v] in ("is", "are") and (c.word(v + 1) or "").endswith("ing") \
            and c.verb_type(v + 1) == "participle":
        form, verb_at = "progressive", v + 1
    elif kind in ("finite", "participle"):
        form, verb_at = kind, v
    else:
        return []
    lemma = c.lex.lemma(c.low[verb_at])
    if lemma not in c.lex.transitive:
        return []
    obj = c.chunk(verb_at + 1)
    if obj.head is None or not (obj.has_det or c.is_plural_word(obj.head)
                                 or c.low[obj.head] in c.lex.uncountable):
        return []
    end = obj.end
    if c.word(end) == "of":  # "a cup of coffee"
        end = c.chunk(end + 1).end
    tail = t[end:c.clause_end]
    if tail and (c.low[end] not in PREPOSITIONS or len(tail) < 3 or c.has_verb(end, c.clause_end)):
        return []  # "a horse and a dog", "his tie off", a second verb: keep the agent clear
    subject = t[c.body:v]
    meta = c.subject.head is not None and meta_object(c) is not None
    agent = (["in"] if meta else ["by"]) + subject
    pp = c.lex.participle(lemma)
    obj_tokens = t[obj.start:end]
    be = be_for(c, obj)
    if form == "finite" and c.low[v] == c.lex.past(lemma) and c.low[v] != c.lex.third(lemma):
        be = {"is": "was", "are": "were"}[be]
    middle = {"progressive": [be, "being", pp], "finite": [be, pp], "participle": [pp]}[form]
    return [t[:c.body] + obj_tokens + middle + agent + tail + t[c.clause_end:]]


def _to_active(c: Caption) -> list[Tokens]:
    t = c.toks
    for i in range(c.body + 1, c.clause_end - 1):
        lemma = c.lex.lemma(c.low[i])
        if lemma not in c.lex.transitive or c.low[i] != c.lex.participle(lemma) or c.low[i] == lemma:
            continue
        if c.verb_type(i) is None and c.low[i - 1] not in ("is", "are", "being"):
            continue  # a modifier: "a covered sidewalk"
        agent = c.chunk(i + 2)
        if agent.head is None or c.low[i + 1] not in ("by", "in"):
            continue
        if c.low[i + 1] == "in" and c.low[agent.head] not in ("image", "picture", "photo", "photograph"):
            return []
        before = c.low[c.body:i]
        if before[-2:] in (["is", "being"], ["are", "being"]):
            patient, verb = t[c.body:i - 2], [be_for(c, agent), c.lex.gerund(lemma)]
        elif before[-1:] in (["is"], ["are"]):
            singular = not c.is_plural_chunk(agent)
            patient, verb = t[c.body:i - 1], [c.lex.third(lemma) if singular else lemma]
        else:
            patient, verb = t[c.body:i], [c.lex.gerund(lemma)]
        if not patient or c.has_verb(c.body, c.body + len(patient)):
            return []
        return [t[:c.body] + t[agent.start:agent.end] + verb + patient + t[agent.end:]]
    return []


# kinds in the order a batch job prefers them (it writes the first)
PARAPHRASERS: tuple[tuple[str, Callable[[Caption], list[Tokens]]], ...] = (
    ("synonym", synonym), ("voice", voice), ("reorder", reorder), ("template", template),
    ("existential", existential),
)
