"""The embedded world's vocabulary: domains, nouns, verbs, adjectives and sentence rules.

Data only; :mod:`rlhf_gym.core.world` expands it into reviews. Changing anything here changes the
training corpus, so rebuild the shipped model afterwards (``python scripts/build_world.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class _Noun:
    """A noun phrase; ``kind`` picks the adjectives that fit it (see _ADJECTIVES)."""

    text: str
    kind: str = "generic"
    plural: bool = False


def _nouns(kind: str, *singular: str, plural: tuple[str, ...] = ()) -> tuple[_Noun, ...]:
    return tuple(_Noun(t, kind) for t in singular) + tuple(_Noun(t, kind, True) for t in plural)


@dataclass(frozen=True)
class _Domain:
    """What can be reviewed: the topics ("this movie"), their aspects, openings and domain phrases.

    ``openings`` are told in the past tense, ``present_openings`` in the present. An opening that ends
    like a clause opener ("and", ",", ":", "that") is followed by a full clause; any other opening is a
    subject ("The acting in this movie") and is followed by a predicate ("was great").
    """

    name: str
    topics: tuple[_Noun, ...]
    aspects: tuple[_Noun, ...]
    openings: tuple[str, ...]
    present_openings: tuple[str, ...]
    rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


# Verb slots are named by their past form: {was} becomes was/were/is/are, agreeing with the last noun.
_VERBS: dict[str, tuple[str, str, str, str]] = {  # past sg, past pl, present sg, present pl
    "was": ("was", "were", "is", "are"),
    "wasnt": ("wasn't", "weren't", "isn't", "aren't"),
    "made": ("made", "made", "makes", "make"),
    "felt": ("felt", "felt", "feels", "feel"),
    "looked": ("looked", "looked", "looks", "look"),
    "loved": ("loved", "loved", "love", "love"),
    "liked": ("liked", "liked", "like", "like"),
    "enjoyed": ("enjoyed", "enjoyed", "enjoy", "enjoy"),
    "hated": ("hated", "hated", "hate", "hate"),
    "didnt": ("didn't", "didn't", "doesn't", "don't"),
    "worked": ("worked", "worked", "works", "work"),
}


@dataclass(frozen=True)
class _Adjectives:
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    neutral: tuple[str, ...]


# Adjectives by noun kind. Positive and negative ones are mostly in VADER's lexicon; a few realistic ones
# it does not know (bland, flimsy) keep the gold judge imperfect, as a human's proxy should be.
_ADJECTIVES: dict[str, _Adjectives] = {
    "generic": _Adjectives(
        ("good", "great", "nice", "lovely", "wonderful", "pleasant", "impressive", "enjoyable"),
        ("bad", "poor", "disappointing", "weak", "unpleasant", "annoying", "frustrating"),
        ("about what I expected", "fairly average", "fairly standard", "quite ordinary",
         "mostly as advertised",
         "the same as last time", "similar to the others", "different from what I pictured"),
    ),
    "art": _Adjectives(
        ("funny", "clever", "charming", "entertaining", "exciting", "beautiful", "interesting", "sweet"),
        ("boring", "dull", "confusing", "stupid", "painful", "lame", "predictable"),
        ("a little long", "fairly conventional", "typical of the genre", "different from the trailer",
         "slow in places", "very old fashioned", "quite short"),
    ),
    "food": _Adjectives(
        ("delicious", "fresh", "tasty", "perfect", "sweet"),
        ("bland", "disgusting", "cold", "gross", "stale", "greasy"),
        ("on the expensive side", "a little salty", "typical for the area", "served on small plates",
         "quite filling", "fairly simple"),
    ),
    "people": _Adjectives(
        ("friendly", "helpful", "kind", "welcoming", "attentive", "polite"),
        ("rude", "unfriendly", "careless", "slow", "unhelpful"),
        ("busy", "quite formal", "fairly quiet", "young", "in a hurry", "new to the job"),
    ),
    "place": _Adjectives(
        ("clean", "comfortable", "beautiful", "cozy", "charming", "quiet"),
        ("dirty", "noisy", "uncomfortable", "cramped", "ugly", "filthy"),
        ("on the expensive side", "fairly small", "busy", "typical for the area", "quite modern",
         "painted blue", "on the second floor"),
    ),
    "device": _Adjectives(
        ("easy to use", "powerful", "reliable", "fast", "comfortable", "sturdy"),
        ("broken", "useless", "slow", "flimsy", "unreliable", "frustrating"),
        ("on the expensive side", "a little heavy", "smaller than I thought", "fairly standard",
         "about average", "different from the photos", "similar to the old one"),
    ),
}

_GLOBAL_RULES: dict[str, tuple[str, ...]] = {
    # adjective phrases; {pos_adj}, {neg_adj} and {neu_adj} fit the kind of the last noun
    "pos_ap": ("{intens} {pos_adj}", "{pos_adj}", "{pos_adj}", "{extreme_adv} {pos_extreme}",
               "{pos_extreme}", "{pos_pair}"),
    "neg_ap": ("{intens} {neg_adj}", "{neg_adj}", "{neg_adj}", "{extreme_adv} {neg_extreme}",
               "{neg_extreme}", "{neg_pair}"),
    # attributive ("a really good film"): no "so" or "just" in front
    "pos_attr": ("{pos_generic}", "{attr_intens} {pos_generic}", "{attr_extreme} {pos_extreme}",
                 "{pos_extreme}"),
    "neg_attr": ("{neg_generic}", "{attr_intens} {neg_generic}", "{attr_extreme} {neg_extreme}",
                 "{neg_extreme}"),
    "mild_pos_ap": ("okay", "fine", "not bad", "good enough", "nice enough", "fair", "decent", "acceptable",
                    "not {neg_extreme}"),
    "mild_neg_ap": ("{mild} {neg_adj}", "{mild} {neg_adj}", "not great", "not very {pos_generic}",
                    "{mild} disappointing", "not perfect", "not as {pos_generic} as I hoped"),
    "intens": ("really", "very", "so", "quite", "incredibly", "extremely", "remarkably", "genuinely",
               "really", "very"),
    "verb_adv": ("really", "truly", "absolutely", "just", "really"),
    "extreme_adv": ("absolutely", "truly", "simply", "just", "utterly"),
    "attr_intens": ("really", "very", "truly", "incredibly", "extremely", "genuinely"),
    "attr_extreme": ("absolutely", "truly", "simply", "utterly"),
    "mild": ("a bit", "a little", "slightly", "somewhat", "kind of", "a bit"),
    "pos_extreme": ("excellent", "fantastic", "amazing", "superb", "outstanding", "perfect", "brilliant",
                    "awesome", "terrific", "delightful", "flawless"),
    "neg_extreme": ("terrible", "awful", "horrible", "dreadful", "pathetic", "useless", "disgusting"),
    # predicates follow a subject; clauses are complete
    "pos_pred": ("{was} {pos_ap}", "{was} {pos_ap}", "{was} {pos_ap}", "{was} never {neg_adj}",
                 "{wasnt} {neg_adj} at all", "{was} {a} {pos_attr} surprise", "{made} me {happy}",
                 "{was} better than I expected", "{looked} {pos_ap}", "{felt} {pos_ap}",
                 "{was} {verb_adv} {pos_extreme}"),
    "neg_pred": ("{was} {neg_ap}", "{was} {neg_ap}", "{was} {neg_ap}", "{wasnt} {pos_adj} at all",
                 "{was} not very {pos_adj}", "{was} {a} {neg_attr} disappointment", "{made} me {sad}",
                 "{was} worse than I expected", "{looked} {neg_ap}", "{felt} {neg_ap}",
                 "{was} a complete mess", "{was} {verb_adv} {neg_extreme}"),
    "mild_pos_pred": ("{was} {mild_pos_ap}",),
    "mild_neg_pred": ("{was} {mild_neg_ap}", "{was} {mild_neg_ap}", "{looked} {mild} {neg_adj}"),
    "neu_pred": ("{was} {neu_adj}", "{was} {neu_adj}", "{was} {neu_adj}", "{looked} {neu_generic}",
                 "{felt} {neu_generic}"),
    "pos_clause": ("{aspect} {pos_pred}", "{aspect} {pos_pred}", "{aspect} {pos_pred}", "{it} {pos_pred}",
                   "{I} {verb_adv} {loved} {aspect}", "{I} {loved} {aspect}", "{I} {enjoyed} {aspect}",
                   "{I} {verb_adv} {enjoyed} {aspect}", "{I} {liked} {aspect}",
                   "{it} {was} {a} {pos_attr} {thing}",
                   "{aspect} {was} the best part", "{pos_domain}"),
    "neg_clause": ("{aspect} {neg_pred}", "{aspect} {neg_pred}", "{aspect} {neg_pred}", "{it} {neg_pred}",
                   "{I} {hated} {aspect}", "{I} {verb_adv} {hated} {aspect}", "{I} {didnt} like {aspect}",
                   "{I} {didnt} enjoy {aspect} at all", "{it} {was} {a} {neg_attr} {thing}",
                   "{aspect} {was} the worst part", "{neg_domain}"),
    "mild_pos_clause": ("{aspect} {mild_pos_pred}", "{it} {mild_pos_pred}", "{aspect} {mild_pos_pred}"),
    "mild_neg_clause": ("{aspect} {mild_neg_pred}", "{aspect} {mild_neg_pred}", "{it} {mild_neg_pred}",
                        "{I} {didnt} love {aspect}"),
    "neu_clause": ("{aspect} {neu_pred}", "{aspect} {neu_pred}", "{it} {neu_pred}", "{fact}", "{fact}"),
    "happy": ("happy", "smile", "laugh", "very happy", "so happy"),
    "sad": ("sad", "angry", "sad", "so angry", "really sad"),
    "a": ("a",),  # a/an is fixed after expansion, see _ARTICLE
    # a continuation is "{<sentiment>_body}." then "{<sentiment>_end}"; {pos_first} etc. is a clause, or
    # a predicate after a subject opening (see _sample_review)
    "positive_body": ("{pos_first}", "{pos_first}", "{pos_first} and {pos_clause}",
                      "{pos_first}, and {pos_clause}", "{mild_neg_first}, but {pos_clause}",
                      "{pos_first}, although {mild_neg_clause}", "{pos_first}, even though {mild_neg_clause}",
                      "{neu_first}, but {pos_clause}", "{pos_first}, and {fact}"),
    "negative_body": ("{neg_first}", "{neg_first}", "{neg_first} and {neg_clause}",
                      "{neg_first}, and {neg_clause}", "{mild_pos_first}, but {neg_clause}",
                      "{neg_first}, although {mild_pos_clause}", "{neg_first}, even though {mild_pos_clause}",
                      "{neu_first}, but {neg_clause}", "{neg_first}, and {fact}"),
    "neutral_body": ("{neu_first}", "{neu_first} and {neu_clause}", "{neu_first}, and {fact}",
                     "{neu_first}, but {neu_clause}", "{neu_first}, and {neu_clause}"),
    "positive_end": ("", "", "{Pos_clause}.", "{Pos_closing}.", "{Pos_closing}.",
                     "{Pos_clause}. {Pos_closing}."),
    "negative_end": ("", "", "{Neg_clause}.", "{Neg_closing}.", "{Neg_closing}.",
                     "{Neg_clause}. {Neg_closing}."),
    "neutral_end": ("", "{Neu_clause}.", "{Neu_closing}.", "{Fact}."),
    "pos_closing": ("I would {definitely} recommend {it_obj}", "I would recommend {it_obj} to anyone",
                    "I will {definitely} {again}", "I can't wait to {again}",
                    "overall {a} {pos_extreme} {thing}",
                    "five stars", "worth every penny", "{it} {was} {a} {pos_attr} {thing} overall",
                    "I loved every minute of {it_obj}", "highly recommended"),
    "neg_closing": ("I would not recommend {it_obj}", "I would not recommend {it_obj} to anyone",
                    "I will never {again}", "I won't {again}", "what a waste of {wasted}",
                    "one star", "avoid {it_obj} if you can", "overall {a} {neg_extreme} {thing}",
                    "I regret {regret}", "such a disappointment"),
    "neu_closing": ("that is all I have to say", "make of that what you will", "nothing more to add",
                    "I have not decided whether to {again}", "it is what it is",
                    "your mileage may vary", "I might {again} at some point", "three stars"),
    "definitely": ("definitely", "", "", "happily", "absolutely"),
    "when": ("last weekend", "last night", "on Friday", "a few days ago", "over the break", "last month",
             "this week", "yesterday", "on Sunday afternoon", "on Saturday", "last summer", "in January"),
    "who": ("with my wife", "with my husband", "with my parents", "with two coworkers", "with my sister",
            "on my own", "with my brother", "with the whole family", "with my roommate"),
    "duration": ("two weeks", "a month", "three days", "a few months", "about a year", "six weeks",
                 "a couple of days", "ten days"),
}

# Openings that fit every domain, told in the past tense.
_GENERIC_OPENINGS: tuple[str, ...] = (
    "So I tried {topic} {when} and", "I have to say that", "To sum it up,", "Long story short,",
    "After thinking about it for a while,", "In my opinion,", "My overall take is that", "If you ask me,",
    "Here is my take:",
)


_DOMAINS: tuple[_Domain, ...] = (
    _Domain(
        "movie",
        topics=_nouns("art", "this movie", "the film", "this film", "this documentary", "the new sequel"),
        aspects=_nouns("art", "the acting", "the plot", "the story", "the soundtrack", "the ending",
                       "the dialogue", "the script", "the pacing", "the cinematography", "the lead actor",
                       "the opening scene", "the first half", "the final scene", "the music",
                       plural=("the visual effects", "the songs", "the characters", "the costumes",
                               "the action scenes")),
        openings=("I watched {topic} {when} and", "We saw {topic} at the cinema {when}, and",
                  "I streamed {topic} {when} {who} and", "My brother picked {topic} for movie night, and",
                  "I went to see {topic} {who}, and", "After seeing {topic} twice,",
                  "{Aspect} in {topic}", "{Aspect} of {topic}", "{Topic} we watched {when}",
                  "Halfway through {topic} I realized that"),
        present_openings=("Now that I have seen {topic},", "{Aspect} of {topic} we saw {when}"),
        rules=dict(
            thing=("film", "movie", "watch", "evening", "story", "two hours"),
            again=("watch {it_obj} again", "see {it_obj} again", "watch the sequel"),
            wasted=("two hours", "time", "a Friday night", "money"),
            regret=("buying the tickets", "watching {it_obj}", "staying until the end"),
            fact=("it runs a little over two hours", "it was shot in black and white",
                  "the story takes place in a small fishing town", "it is based on a book from the nineties",
                  "the director also wrote the script", "most of the cast are unknown actors",
                  "the story follows two brothers on a road trip",
                  "it has subtitles for most of the dialogue"),
            pos_domain=("the theater was packed and everyone clapped at the end",
                        "the final twist was {extreme_adv} {pos_extreme}", "I laughed the whole time"),
            neg_domain=("I fell asleep halfway through", "half the audience walked out",
                        "the final twist was {extreme_adv} {neg_extreme}"),
        ),
    ),
    _Domain(
        "book",
        topics=_nouns("art", "this book", "the biography", "this memoir", "this cookbook", "the new mystery"),
        aspects=_nouns("art", "the writing", "the plot", "the main character", "the ending",
                       "the first chapter", "the prose", "the story", "the dialogue", "the narrator",
                       "the last chapter",
                       plural=("the characters", "the descriptions", "the illustrations", "the recipes")),
        openings=("I read {topic} {when} and", "I finished {topic} {when}, and",
                  "My book club picked {topic}, and", "I borrowed {topic} from the library and",
                  "I read {topic} on the train {when} and", "{Aspect} of {topic}", "{Aspect} in {topic}",
                  "{Topic} I read {when}"),
        present_openings=("I am halfway through {topic} and", "Now that I have finished {topic},"),
        rules=dict(
            thing=("book", "read", "story", "novel", "weekend read"),
            again=("read {it_obj} again", "read the sequel", "pick up another book by this author"),
            wasted=("time", "paper", "a weekend", "money"),
            regret=("buying {it_obj}", "reading {it_obj}", "finishing {it_obj}"),
            fact=("it has about three hundred pages", "the author lives in Canada",
                  "it is the second book in a series", "the chapters are short",
                  "it was translated from Spanish", "the story is told in the first person",
                  "it came out last spring"),
            pos_domain=("I could not put {it_obj} down", "I read {it_obj} in one sitting",
                        "I stayed up all night reading"),
            neg_domain=("I gave up after fifty pages", "I had to force myself to finish {it_obj}",
                        "I kept falling asleep while reading"),
        ),
    ),
    _Domain(
        "show",
        topics=_nouns("art", "this show", "the series", "this sitcom", "the new season", "this cartoon"),
        aspects=_nouns("art", "the acting", "the writing", "the first episode", "the finale",
                       "the theme song",
                       "the main cast", "the tone", "the story",
                       plural=("the episodes", "the characters", "the guest stars", "the plot twists")),
        openings=("I binged {topic} {when} and", "We started {topic} {when} and",
                  "My roommate got me into {topic}, and", "{Aspect} of {topic}", "{Aspect} in {topic}"),
        present_openings=("I am on the fourth episode of {topic} and", "Three episodes into {topic},"),
        rules=dict(
            thing=("show", "series", "season", "binge"),
            again=("watch the next season", "watch {it_obj} again", "finish the series"),
            wasted=("a weekend", "time", "ten hours"),
            regret=("starting {it_obj}", "watching {it_obj}"),
            fact=("each episode is about half an hour", "there are eight episodes in the season",
                  "it is set in a hospital in Chicago", "the second season comes out next year",
                  "it is based on a comic book"),
            pos_domain=("I watched the whole season in two days",
                        "every episode ends with a {pos_adj} cliffhanger"),
            neg_domain=("I stopped after two episodes", "every episode felt the same"),
        ),
    ),
    _Domain(
        "game",
        topics=_nouns("art", "this game", "the new game", "this puzzle game", "this racing game"),
        aspects=_nouns("art", "the gameplay", "the story", "the soundtrack", "the art style", "the tutorial",
                       "the multiplayer", "the last level", "the final boss", "the map",
                       plural=("the controls", "the graphics", "the puzzles", "the levels", "the cutscenes")),
        openings=("I tried {topic} {when} and", "We tried {topic} {who} {when}, and",
                  "I spent the weekend with {topic}, and", "{Aspect} of {topic}", "{Aspect} in {topic}"),
        present_openings=("I have had {topic} for {duration} and", "After {duration} with {topic},"),
        rules=dict(
            thing=("game", "experience", "evening", "purchase"),
            again=("pick {it_obj} up again", "buy the sequel", "try the sequel"),
            wasted=("money", "time", "a weekend"),
            regret=("buying {it_obj}", "playing {it_obj}"),
            fact=("it takes about twenty hours to finish", "it allows up to four players",
                  "a round lasts about an hour", "there are three game modes", "it came out last year"),
            pos_domain=("I played for six hours straight", "every level felt {pos_adj}"),
            neg_domain=("the game crashed twice", "I quit after the first hour"),
        ),
    ),
    _Domain(
        "restaurant",
        topics=_nouns("place", "this restaurant", "this place", "this little bistro", "this pizza place",
                      "this diner", "this sushi bar", "the new taco place"),
        aspects=(_nouns("food", "the food", "the pasta", "the dessert", "the soup", "the bread", "the pizza",
                        "the steak", "the coffee", "the fish",
                        plural=("the portions", "the fries", "the noodles", "the appetizers"))
                 + _nouns("people", "the service", "the waiter", "the staff", "the chef",
                          plural=("the waiters",))
                 + _nouns("place", "the atmosphere", "the dining room", "the terrace",
                          plural=("the bathrooms",))),
        openings=("We had dinner at {topic} {when} and", "I went to {topic} {who} {when}, and",
                  "We ordered takeout from {topic} {when} and", "I had lunch at {topic} {when} and",
                  "{Aspect} at {topic}", "The last time we ate at {topic},"),
        present_openings=("We go to {topic} every few weeks and", "{Aspect} at {topic}"),
        rules=dict(
            thing=("meal", "dinner", "evening", "lunch", "night out", "place"),
            again=("come back", "go back", "eat here again", "order from {it_obj} again"),
            wasted=("money", "an evening", "forty dollars"),
            regret=("ordering the special", "going there", "booking a table"),
            fact=("we ordered the soup and the fish", "the menu changes every week",
                  "it is open until eleven",
                  "we sat near the window", "we had a table for four", "they only take cash",
                  "parking is on the street", "the kitchen closes at ten"),
            pos_domain=("the food came out quickly and hot", "we finished every plate",
                        "the chef came out to say hello"),
            neg_domain=("we waited an hour for our food", "the order was wrong twice",
                        "the food arrived cold"),
        ),
    ),
    _Domain(
        "cafe",
        topics=_nouns("place", "this cafe", "the coffee shop", "this bakery", "the tea room"),
        aspects=(_nouns("food", "the coffee", "the espresso", "the croissant", "the cake", "the tea",
                        plural=("the pastries", "the sandwiches", "the cookies"))
                 + _nouns("people", "the barista", "the service", "the staff")
                 + _nouns("place", "the seating", "the music", "the patio")),
        openings=("I dropped by {topic} {when} and", "We met at {topic} {when}, and",
                  "I worked from {topic} {when} and", "{Aspect} at {topic}"),
        present_openings=("I go to {topic} most mornings and", "{Aspect} at {topic}"),
        rules=dict(
            thing=("cafe", "morning", "coffee", "place", "break"),
            again=("come back", "go back", "come by again"),
            wasted=("money", "a morning"),
            regret=("ordering the cake", "going there"),
            fact=("it opens at seven", "they have oat milk", "it is next to the train station",
                  "there are only six tables", "the wifi password is on the wall"),
            pos_domain=("the coffee was {extreme_adv} {pos_extreme}", "I stayed for three hours"),
            neg_domain=("the coffee tasted burnt", "we waited twenty minutes for one latte"),
        ),
    ),
    _Domain(
        "hotel",
        topics=_nouns("place", "this hotel", "the resort", "this little inn", "the motel", "this apartment"),
        aspects=(_nouns("place", "the room", "the bed", "the bathroom", "the pool", "the reception",
                        "the view",
                        "the gym", "the location", plural=("the beds", "the rooms", "the towels"))
                 + _nouns("people", "the staff", "the front desk", "the manager", "the service")
                 + _nouns("food", "the breakfast", "the buffet", "the coffee")),
        openings=("We stayed at {topic} for three nights and", "I booked {topic} for a work trip, and",
                  "We spent our vacation at {topic}, and", "I stayed at {topic} {when} and",
                  "{Aspect} at {topic}", "{Aspect} of {topic}", "When we checked into {topic},"),
        present_openings=("I stay at {topic} every time I visit, and", "{Aspect} at {topic}"),
        rules=dict(
            thing=("stay", "trip", "weekend", "hotel", "place"),
            again=("stay here again", "come back", "book {it_obj} again"),
            wasted=("money", "a holiday", "three nights"),
            regret=("booking {it_obj}", "staying there"),
            fact=("check in is at three", "the room was on the fifth floor",
                  "it is a short walk from the beach",
                  "breakfast is served until ten", "parking costs extra", "the hotel has sixty rooms"),
            pos_domain=("we slept {intens} well", "the staff upgraded our room"),
            neg_domain=("the shower had no hot water", "we barely slept because of the noise",
                        "our room was not ready until six"),
        ),
    ),
    _Domain(
        "gadget",
        topics=_nouns("device", "this phone", "this laptop", "this speaker", "this keyboard", "this tablet",
                      "this smartwatch", "this camera", plural=("these headphones", "these earbuds")),
        aspects=_nouns("device", "the battery", "the charger", "the app", "the design", "the build quality",
                       "the setup", "the case", "the price", "the packaging", "the battery life",
                       plural=("the buttons", "the instructions", "the updates", "the settings")),
        openings=("I bought {topic} {when} and", "I got {topic} {when}, and",
                  "I ordered {topic} online and", "{Aspect} of {topic}", "{Aspect} on {topic}"),
        present_openings=("I have been using {topic} for {duration} and", "After {duration} with {topic},",
                          "{Aspect} of {topic}", "{Topic} I got {when}"),
        rules=dict(
            thing=("purchase", "device", "product", "buy", "gadget"),
            again=("buy {it_obj} again", "buy from this brand again", "order another one"),
            wasted=("money", "two hundred dollars", "time"),
            regret=("buying {it_obj}", "this purchase", "not reading the reviews"),
            fact=("there are three colors to choose from", "the box includes a charger",
                  "the package weighs about a pound",
                  "the cable is USB", "the warranty lasts one year", "the package arrived two days early"),
            pos_domain=("the battery lasts {intens} long", "{it} {worked} {intens} well",
                        "setup took less than five minutes"),
            neg_domain=("{it} stopped working after a week", "the battery dies in two hours",
                        "{it} broke after a month", "I had to return {it_obj}"),
        ),
    ),
    _Domain(
        "kitchen",
        topics=_nouns("device", "this blender", "this coffee maker", "this toaster", "this air fryer",
                      "this kettle", "this vacuum", plural=("these knives", "these pans")),
        aspects=_nouns("device", "the motor", "the lid", "the handle", "the design", "the price",
                       "the cleanup", "the cord", "the timer",
                       plural=("the buttons", "the blades", "the instructions", "the settings")),
        openings=("I bought {topic} {when} and", "We ordered {topic} online and",
                  "My parents gave us {topic}, and", "{Aspect} of {topic}", "{Aspect} on {topic}"),
        present_openings=("I have been using {topic} for {duration} and", "After {duration} with {topic},",
                          "We use {topic} every day and"),
        rules=dict(
            thing=("purchase", "appliance", "product", "buy"),
            again=("buy {it_obj} again", "buy from this brand again", "order another one"),
            wasted=("money", "sixty dollars", "counter space"),
            regret=("buying {it_obj}", "this purchase"),
            fact=("there are two colors to choose from", "the box includes a recipe booklet",
                  "the warranty lasts two years",
                  "the package came with a manual", "the store had it on the bottom shelf"),
            pos_domain=("{it} {worked} {intens} well", "cleanup takes a minute"),
            neg_domain=("{it} stopped working after a week", "the lid leaks every time",
                        "{it} broke after a month"),
        ),
    ),
)


# --------------------------------------------------------------------------------------------------
# Expansion
# --------------------------------------------------------------------------------------------------

_ADJECTIVE_SLOTS: dict[str, tuple[str, str]] = {  # slot -> (polarity, kind)
    "pos_adj": ("positive", "last noun"),
    "neg_adj": ("negative", "last noun"),
    "neu_adj": ("neutral", "last noun"),
    "pos_generic": ("positive", "generic"),
    "neg_generic": ("negative", "generic"),
    "neu_generic": ("neutral", "generic"),
    "pos_pair": ("positive", "last noun"),  # two different adjectives joined by "and"
    "neg_pair": ("negative", "last noun"),
}
