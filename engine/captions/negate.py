"""Rule-based negations of an analysed caption, one function per kind.

Each function returns token lists (possibly none). The affirmative kinds only touch the first
clause, and only when it has no negation yet: "no car is not present" helps nobody. A caption
that already negates something gets the negation removed instead (kind ``affirmation``), which
contradicts it just as well.
"""

from __future__ import annotations

from typing import Callable, Optional

from .parse import META_NOUNS, Caption, Chunk

Tokens = list[str]

SHOW_VERBS = frozenset("show feature contain include depict display have".split())
META_PREDICATES = frozenset("present visible shown included seen pictured depicted featured displayed".split())
# only a containing location makes "<place> free of <things>" contradict the caption
BE_FORMS = frozenset("is are was were be been being am".split())
NOT_WORDS = frozenset(("not", "n't", "never", "also", "still"))
CONTAINERS = frozenset("in on inside atop at".split())
DIRECTIONS = frozenset("left right middle center centre top bottom front back side distance "
                       "background foreground air sky camera rain snow sun sunshine shade dark "
                       "fog wind night daylight".split())


def bare(c: Caption, chunk: Chunk, plural: bool = False) -> Tokens:
    """The chunk without its determiner, optionally with a plural head: 'a red circle' ->
    'red circles'."""
    words = c.toks[chunk.det_end:chunk.end]
    if plural and words:
        words = words[:-1] + [c.lex.plural(words[-1].lower())]
    return words


def be_for(c: Caption, chunk: Chunk) -> str:
    return "are" if c.is_plural_chunk(chunk) else "is"


def first_clause_affirmative(c: Caption) -> bool:
    return not c.has_cue(0, c.clause_end)


def meta_objects(c: Caption) -> list[Chunk]:
    """The object of "this image shows X" and any noun phrases coordinated with it ("a bench
    and a truck"), else []."""
    obj = meta_object(c)
    if obj is None:
        return []
    chunks = [obj]
    while c.word(chunks[-1].end) in ("and", ",") and c.word(chunks[-1].end + 1) != "and":
        nxt = c.chunk(chunks[-1].end + 1)
        if nxt.head is None:
            break
        chunks.append(nxt)
    return chunks


def meta_object(c: Caption) -> Optional[Chunk]:
    """The object of "this image shows X" (finite or progressive), else None."""
    s = c.subject
    if s.head is None or c.low[s.head] not in META_NOUNS or c.vtype not in ("aux", "finite"):
        return None
    k = c.verb + (1 if c.vtype == "finite" else 2)
    verb = c.low[c.verb] if c.vtype == "finite" else c.word(c.verb + 1)
    if verb is None or c.lex.lemma(verb) not in SHOW_VERBS:
        return None
    obj = c.chunk(k)
    return obj if obj.head is not None else None


def coordinated_subject(c: Caption) -> bool:
    return c.verb is not None and c.word(c.subject.end) == "and"


def with_index(c: Caption) -> Optional[int]:
    """First "with" of the first clause that introduces a noun phrase."""
    for i in range(c.body, c.clause_end - 1):
        if c.low[i] == "with" and c.low[i + 1] not in ("no", "its", "it") \
                and not c.lex.lemma(c.low[i - 1] if i else ""):  # "covered with" stays
            return i
    return None


# ---- the kinds -------------------------------------------------------------------------------

def verbal(c: Caption) -> list[Tokens]:
    """'is sitting' -> 'is not sitting', 'sits' -> 'does not sit', 'a man riding' -> 'a man
    not riding'."""
    i, kind = c.verb, c.vtype
    if kind == "existential":  # "there are women that are laughing" -> "... are not laughing"
        i = next((k for k in range(c.subject.end, c.clause_end) if c.verb_type(k)), None)
        kind = c.verb_type(i) if i is not None else None
    if i is None or not first_clause_affirmative(c):
        return []
    t, w, nxt = c.toks, c.low[i], c.word(i + 1)
    if kind == "aux":
        if w in ("has", "have", "had") and not _is_participle(c, nxt):  # possession
            return [t[:i] + [{"has": "does", "have": "do", "had": "did"}[w], "not", "have"] + t[i + 1:]]
        if w == "can":
            return [t[:i] + ["cannot"] + t[i + 1:]]
        return [t[:i + 1] + ["not"] + t[i + 1:]]
    if kind == "finite":
        lemma = c.lex.lemma(w)
        if w == lemma:
            do = "do"
        elif w == c.lex.third(lemma):
            do = "does"
        else:
            do = "did"
        return [t[:i] + [do, "not", lemma] + t[i + 1:]]
    return [t[:i] + ["not"] + t[i:]]  # participle


def _is_participle(c: Caption, word: Optional[str]) -> bool:
    lemma = c.lex.lemma(word) if word else None
    return word == "been" or (lemma is not None and word != lemma and word == c.lex.participle(lemma))


def determiner(c: Caption) -> list[Tokens]:
    """Deny one noun phrase with "no": the subject, the object of "this image shows X", or the
    last item of a list ("a red circle and no blue square")."""
    if c.existential or not first_clause_affirmative(c) or coordinated_subject(c):
        return []
    spans = c.conjuncts()
    start = c.body
    if spans:
        target = c.chunk(spans[-1][0])
    else:
        target = meta_object(c) or c.subject
        start = 0 if target is not c.subject else c.body  # "a picture of no dog" reads badly
    if target.head is None:
        return []
    t = c.toks
    return [t[start:target.start] + ["no"] + t[target.det_end:]]


def existential(c: Caption) -> list[Tokens]:
    """'there is a dog' -> 'there is no dog'; 'a zebra is standing in a field' -> 'there is no
    zebra standing in a field'; 'this image shows a car' -> 'there is no car in this image'."""
    if not first_clause_affirmative(c) or coordinated_subject(c) or c.tail_is_predicate():
        return []
    t, s = c.toks, c.subject
    if s.head is None:
        return []
    if c.existential:
        return [t[:2] + ["no"] + t[s.det_end:]]
    spans = c.conjuncts()
    if spans:
        first = _list_before_last(c, spans)
        return [["there", be_for(c, c.chunk(0))] + first + ["but", "no"] + t[c.chunk(spans[-1][0]).det_end:]]
    return there_is(c, deny=True)


def there_is(c: Caption, deny: bool) -> list[Tokens]:
    """The caption as an existential sentence, optionally denying its subject: 'a zebra is
    standing in a field' -> 'there is (no) zebra standing in a field', 'a person sits' -> 'there
    is a person that sits', 'this image shows a car' -> 'there is (no) car in this image'."""
    t, s = c.toks, c.subject
    objs = meta_objects(c)
    if objs:  # "this image shows a bench and a truck" -> "there is no bench or truck in this image"
        if deny:
            phrase = ["no"] + ["or" if w == "and" else w for w in join_list([bare(c, o) for o in objs])]
        else:
            phrase = t[objs[0].start:objs[-1].end]
        return [["there", be_for(c, objs[0])] + phrase + ["in"] + t[:s.end] + t[objs[-1].end:]]
    end = c.verb if c.verb is not None else c.clause_end
    head = ["there", be_for(c, s)] + (["no"] + t[s.det_end:end] if deny else t[s.start:end])
    if c.vtype in (None, "participle"):
        return [head + t[end:]]
    if c.low[end - 1] in ("that", "who", "which"):
        return [head + t[end:]]
    simple = (c.vtype == "aux" and c.low[end] in ("is", "are", "was", "were")
              and not c.has_verb(end + 2, c.clause_end))
    return [head + t[end + 1:]] if simple else [head + ["that"] + t[end:]]


def _list_before_last(c: Caption, spans: list[tuple[int, int]]) -> Tokens:
    """'a, b and c' -> tokens of 'a and b' (the list without its last item)."""
    items = [c.toks[s:e] for s, e in spans[:-1]]
    return join_list(items)


def join_list(items: list[Tokens]) -> Tokens:
    """[['a','dog'], ['a','cat'], ['a','bird']] -> 'a dog, a cat and a bird' as tokens."""
    out: Tokens = []
    for k, item in enumerate(items):
        if k:
            out.append("and" if k == len(items) - 1 else ",")
        out.extend(item)
    return out


def copula_complement(c: Caption, start: int) -> bool:
    """Whether the place phrase at ``start`` is what a "be" says ("a star that is not on the
    left", "a man is on a bench"): fronted, it would leave "that is not" dangling."""
    before = start - 1
    while before > c.body and c.low[before] in NOT_WORDS:
        before -= 1
    return c.low[before] in BE_FORMS


def prepositional(c: Caption) -> list[Tokens]:
    """'with' -> 'without'; 'X and Y' -> 'X without Y'; 'sits on a bench' -> 'sits, but not on
    a bench'."""
    if not first_clause_affirmative(c):
        return []
    t = c.toks
    k = with_index(c)
    if k is not None:
        return [t[:k] + ["without"] + t[k + 1:]]
    spans = c.conjuncts()
    if spans:
        return [_list_before_last(c, spans) + ["without"] + t[spans[-1][0]:]]
    pp = c.final_location_pp()
    if pp and pp[0] - c.body >= 2 and not copula_complement(c, pp[0]):  # not "a cat that is, but not on a mat"
        return [t[:pp[0]] + [",", "but", "not"] + t[pp[0]:]]
    return []


def non_verbal(c: Caption) -> list[Tokens]:
    """Negation without "no"/"not": 'with' -> 'lacking', 'is present in' -> 'is absent from',
    'X and Y' -> 'X, with the Y missing', 'a cat on a mat' -> 'a mat free of cats'."""
    if not first_clause_affirmative(c):
        return []
    t, s, out = c.toks, c.subject, []
    k = with_index(c)
    if k is not None:
        out.append(t[:k] + ["lacking"] + t[k + 1:])
    if c.tail_is_predicate():
        return out
    v = c.verb
    objs = meta_objects(c)
    spans = c.conjuncts()
    if (c.vtype == "aux" and c.low[v] in ("is", "are") and c.word(v + 1) in META_PREDICATES
            and c.word(v + 2) in ("in", "on", "within", "from")):
        out.append(t[:v + 1] + ["absent", "from"] + t[v + 3:])
    elif objs:
        be = "are" if len(objs) > 1 else be_for(c, objs[0])
        out.append(t[objs[0].start:objs[-1].end] + [be, "absent", "from"] + t[:s.end]
                   + t[objs[-1].end:])
    elif spans:
        last = c.chunk(spans[-1][0])
        out.append(_list_before_last(c, spans) + [",", "with", "the"]
                   + t[last.det_end:spans[-1][1]] + ["missing"])
    elif s.head is not None and not c.existential and c.low[s.head] not in META_NOUNS:
        place = _container(c)
        things = bare(c, s, plural=True)
        out.append((place or ["a", "scene"]) + ["free", "of"] + things + t[c.clause_end:])
    return out


def _container(c: Caption) -> Optional[Tokens]:
    """The place of the first containing PP after the verb ('on a mat'), if it is a real place."""
    start = c.verb + 1 if c.verb is not None else c.subject.end
    for i in range(start, c.clause_end - 1):
        if c.low[i] in CONTAINERS and not (c.low[i] == "at" and i == start):
            place = c.chunk(i + 1)
            if (place.head is None or c.low[place.head] in DIRECTIONS | META_NOUNS
                    or c.is_pronoun(place.start)):
                return None
            end = c.chunk(place.end + 1).end if c.word(place.end) == "of" else place.end
            return c.toks[place.start:end]  # "the crest of the mountain"
        if c.verb_type(i) in ("aux", "finite"):
            return None
    return None


def affirmations(c: Caption) -> list[Tokens]:
    """Remove one existing negation: 'is not present' -> 'is present', 'no cup' -> 'a cup',
    'does not feature' -> 'features', 'absent from' -> 'present in', 'without' -> 'with'."""
    t, low, out = c.toks, c.low, []
    for i, w in enumerate(low):
        nxt = c.word(i + 1)
        new: Optional[Tokens] = None
        if w == "not":
            prev, lemma = c.word(i - 1), c.lex.lemma(nxt) if nxt else None
            if prev in ("does", "do", "did") and lemma:
                form = {"does": c.lex.third, "do": str, "did": c.lex.past}[prev](lemma)
                new = t[:i - 1] + [form] + t[i + 2:]
            else:
                new = t[:i] + t[i + 1:]
        elif w == "cannot":
            new = t[:i] + ["can"] + t[i + 1:]
        elif w == "no" and nxt is not None:
            chunk = c.chunk(i)
            if nxt == "one":
                new = t[:i] + ["someone"] + t[i + 2:]
            elif chunk.head is not None:
                plural = c.is_plural_chunk(chunk) or low[chunk.head] in c.lex.uncountable
                new = t[:i] + ([] if plural else ["a"]) + t[i + 1:]
        elif w in ("without", "lacking"):
            new = t[:i] + ["with"] + t[i + 1:]
        elif w in ("lacks", "lack"):
            new = t[:i] + ["has" if w == "lacks" else "have"] + t[i + 1:]
        elif w in ("absent", "missing") and nxt == "from":
            start = i - 1 if (c.word(i - 1) or "").endswith("ly") else i
            new = t[:start] + ["present", "in"] + t[i + 2:]
        elif w == "free" and nxt == "of":
            new = t[:i] + ["with"] + t[i + 2:]
        elif w in ("nothing", "nobody", "nowhere"):
            new = t[:i] + ["some" + w[2:]] + t[i + 1:]
        elif w == "never":
            new = t[:i] + t[i + 1:]
        if new:
            out.append(new)
    return out[:2]


# kinds in the order a batch job prefers them (it writes the first)
NEGATORS: tuple[tuple[str, Callable[[Caption], list[Tokens]]], ...] = (
    ("affirmation", affirmations), ("determiner", determiner), ("existential", existential),
    ("verbal", verbal), ("prepositional", prepositional), ("non_verbal", non_verbal),
)
