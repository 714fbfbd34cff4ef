"""Red-flag words in English and Spanish, as patterns over normalised text (lower case, no accents, no
apostrophes: "can't" -> "cant", "escalofríos" -> "escalofrios", one space between tokens).

Each concept maps onto a field of the check-in vocabulary (fields.py), so free text fires the same rules as
survey answers. `high` concepts are red flags: mentioned about someone else or as resolved, they still reach a
person (text_about_other, text_resolved_flag). Adding a word: add it to a pattern here and a line to
tests/data/triage_messages.jsonl showing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

W = r"[a-z0-9][a-z0-9.&%]*"  # one word token (no punctuation)


def gap(n: int) -> str:
    """Up to n word tokens (never across punctuation)."""
    return rf"(?:{W} ){{0,{n}}}"


def rx(*alternatives: str) -> re.Pattern[str]:
    """Whole-token alternatives over the normalised text."""
    return re.compile(r"(?<!\S)(?:" + "|".join(alternatives) + r")(?!\S)")


@dataclass(frozen=True)
class Concept:
    """A red-flag (or context) notion and the patterns that find it."""

    name: str
    field: str | None  # field set when found about the patient; None = context only
    value: object
    pattern: re.Pattern[str]
    high: bool = False  # a red flag: about others / resolved still goes to a person
    yields_to: tuple[str, ...] = ()  # dropped where one of these concepts overlaps it
    yields_in_segment: tuple[str, ...] = ()  # dropped when one of these is in the same clause
    span_negation: bool = True  # a negation word inside the match negates it (False: the pattern includes one)


CANT = (
    r"(?:cant|cannot|can not|couldnt|could not|unable to|not able to|(?:havent|hasnt|have not|has not) been able to|"
    r"wasnt able to|am unable to|still cant|barely)"
)
NO_PUEDO = r"(?:no (?:puedo|podia|pude|puede|podemos|he podido|logro|consigo|me puedo)|casi no puedo|apenas puedo)"

_FACE = r"(?:face|lips?|tongue|throat|eyes?|eyelids?|mouth|cheeks?|cara|labios?|lengua|garganta|ojos|parpados?|boca)"
_SWOLLEN = r"(?:swell\w*|swollen|puff\w*|hinchad\w*|hinchazon|inflamad\w*|inflamacion|se (?:me )?hincha\w*)"
_RED = r"(?:red|redness|reddish|reddened|rojo|roja|rojez|rojizo|rojiza|enrojecid[oa]|enrojecimiento|colorad[oa])"
_LEG = r"(?:leg|lower leg|ankle|thigh|foot|pierna|tobillo|muslo|pie)"

CONCEPTS: tuple[Concept, ...] = (
    # --- emergency -------------------------------------------------------------------------------------------
    Concept(
        "breathing", "breathless_or_chest_pain", True, rx(
            rf"{CANT} {gap(1)}(?:breath|breathe|breathing|get (?:enough )?air|catch my breath|"
            r"(?:get|take|draw) a (?:full |deep |good |proper |real )?breath)",
            r"(?:hard|difficult|tough|struggling|struggle|trouble|difficulty|problems?|pain|hurts?) "
            r"(?:to |with |when |while |on )?(?:breath|breathe|breathing)",
            r"short(?:ness)? (?:of )?breath", r"out of breath", r"breathless\w*", r"gasp\w*",
            r"struggling for air", r"air hunger", r"wheez\w*", r"winded",
            r"breathing (?:is |feels |seems )?(?:so |really |very )?(?:hard|difficult|fast|laboured|labored|weird|"
            r"funny|heavy|shallow|tight)",
            rf"{NO_PUEDO} {gap(1)}respirar", r"(?:me )?cuesta (?:mucho )?respirar", r"dificultad (?:para|al) respirar",
            r"dificultad respiratoria", r"(?:me|le) falta (?:el )?aire", r"falta de aire", r"me ahog\w*",
            r"ahog(?:o|ando|ada|ado|andome)", r"sin aliento", r"respiro mal", r"no respiro bien",
            r"no me entra (?:el )?aire", r"respiracion (?:dificil|agitada|rapida|corta)",
            r"(?:me )?duele (?:al |cuando )?respir\w*", r"sofoc\w*",
        ),
        high=True, span_negation=False,
    ),
    Concept(
        "chest", "breathless_or_chest_pain", True, rx(
            r"chest", r"cough\w* (?:up )?blood", r"blood when i cough",
            r"(?:heart|pulse) (?:is |was |keeps )?(?:racing|pounding|fluttering)", r"racing heart",
            r"palpitations?", r"pecho", r"tos con sangre", r"tos\w* sangre", r"escup\w* sangre", r"taquicardia",
            r"palpitaciones", r"corazon (?:muy )?(?:acelerado|rapido)",
        ),
        high=True,
    ),
    Concept(
        "face_throat", "allergic_symptoms", "face_throat_or_breathing", rx(
            rf"{_FACE} {gap(3)}{_SWOLLEN}", rf"{_SWOLLEN} {gap(3)}{_FACE}",
            r"throat (?:is |feels )?(?:closing|closed|tight\w*|thick)", r"tight (?:throat|chest)",
            rf"{CANT} {gap(1)}swallow\w*", r"(?:hard|trouble|difficulty|problems?) (?:to |with )?swallow\w*",
            r"anaphyla\w*", r"epi ?pen", r"allergic reaction", r"having a reaction",
            r"reaction to (?:the )?(?:injection|shot|medication|meds|medicine)",
            r"garganta (?:\w+ ){0,2}(?:cerrad\w*|cierra|apretad\w*)", r"se me cierra la garganta",
            rf"{NO_PUEDO} tragar", r"(?:me )?cuesta tragar", r"dificultad para tragar", r"reaccion alergica",
            r"anafila\w*",
        ),
        high=True, span_negation=False,
    ),
    Concept(
        "fainting", "fainting", True, rx(
            r"faint\w*", r"pass(?:ed)? out", r"black(?:ed)? out", r"collaps\w*", r"lost consciousness",
            r"desmay\w*", r"perdi el conocimiento", r"perdi la conciencia", r"me desvaneci",
        ),
        high=True, yields_to=("dizziness",),
    ),
    # --- urgent ----------------------------------------------------------------------------------------------
    Concept(
        "fever", "fever_or_chills_reported", True, rx(
            r"fevers?", r"feverish", r"febrile", r"feaver", r"fevr", r"fevor", r"fiever", r"fevar", r"feber",
            r"fevere", r"fevre", r"fievre", r"fiebres?", r"fiebr", r"febril", r"calenturas?", r"calenturient[oa]",
            r"destemplad[oa]", r"temperatura alta", r"high temp(?:erature)?",
            r"(?:running|run|ran|have|having|had|got|get|with|spiking|spiked) a "
            r"(?:slight |low |high |little |bit of a )?temp(?:erature)?(?! (?:of |de )?\d)",
            r"running (?:a )?temp\w*", r"temp(?:erature)? (?:is |was |went |keeps )?(?:up|high|spiking|spiked|rising)",
            r"(?:tengo|tiene|con|tenia|tuve) temperatura(?! (?:de )?\d)", r"hot and cold", r"hot then cold",
        ),
        high=True,
    ),
    Concept(
        "chills", "fever_or_chills_reported", True, rx(
            r"chills", r"the chill", r"shivers", r"shivering", r"shiver", r"rigou?rs",
            r"shaking (?:all over|uncontrollabl\w*|with cold|and cold|with chills)", rf"{CANT} stop shaking",
            r"sweat\w* and shaking", r"(?:drenched|soaked|soaking|pouring) (?:in|with) sweat", r"sweating buckets",
            r"teeth chattering", r"cold sweats?", r"night sweats?", r"escalofrios?", r"escalosfrios",
            r"tiritando", r"tirito", r"tiritona", r"temblando de frio", r"temblores", r"sudores",
            r"sudoracion nocturna", r"sudando frio", r"sudor frio",
        ),
        high=True,
    ),
    Concept(
        "pus", "wound_drainage", "pus", rx(
            r"pus", r"puss", r"oozing", r"ooze\w*",
            r"(?:yellow\w*|green\w*|cloudy|thick|milky|white|smelly|foul|brown\w*) (?:\w+ )?(?:fluid|discharge|stuff|"
            r"liquid|drainage|gunk|goo|crust)",
            r"(?:smells?|smelling|stinks?) (?:really )?(?:bad|funny|awful|foul|weird)",
            r"(?:foul|bad) (?:smell|odou?r)",
            r"supura\w*", r"supuracion", r"(?:liquido|secrecion|flujo) (?:\w+ )?(?:amarill\w*|verde\w*|espes[oa]|"
            r"blanc[oa]|turbi[oa])", r"mal olor", r"huele (?:muy )?mal", r"apesta",
        ),
        high=True,
    ),
    Concept(
        "clear_drainage", "wound_drainage", "clear", rx(
            r"clear (?:\w+ )?(?:fluid|liquid|drainage|discharge)", r"watery (?:fluid|discharge)", r"serous",
            r"(?:liquido|agua|secrecion) (?:clar[oa]|transparente)",
        ),
    ),
    Concept(
        "drainage", "wound_drainage", "pus", rx(
            r"drain\w*", r"discharge", r"leak\w*", r"weeping", r"fluid (?:coming|leaking) out", r"secrecion",
            r"drena\w*", r"sale liquido", r"gotea\w*", r"gunk", r"goo", r"ooz\w*",
            r"(?:stuff|fluid|liquid|something|blood and \w+) (?:\w+ ){0,1}(?:coming|leaking|seeping|dripping) out",
            r"(?:sale|salen|sale algo|me sale) (?:\w+ )?(?:liquido|agua|algo)",
        ),
        high=True, yields_to=("pus",), yields_in_segment=("clear_drainage",),
    ),
    Concept(
        "infection", "suspected_infection", True, rx(
            r"infected", r"infection", r"infect\w*", r"septic", r"cellulitis", r"infeccion", r"infectad[oa]",
            r"infectandose", r"se infecto",
        ),
        high=True, yields_to=("infection_info", "infection_elsewhere"),
    ),
    Concept(
        "infection_elsewhere", "feels_unwell", True, rx(
            r"(?:ear|sinus|bladder|urinary|urinary tract|tooth|dental|throat|chest|eye|yeast|kidney|skin|stomach|"
            r"respiratory|viral|bacterial) infection", r"uti", r"utis", r"strep throat",
            r"infeccion (?:de|del|en (?:el|la|los|las)) (?:oido|oidos|orina|vejiga|garganta|muela|ojo|ojos|rinon|pecho|"
            r"estomago|urinaria|vias urinarias)", r"infeccion urinaria",
        ),
    ),
    Concept(
        "infection_info", None, None, rx(
            r"(?:risk|chance|chances|prevent\w*|avoid\w*|reduce|riesgo|evitar|prevenir) (?:of |de |an |una |la )*"
            r"(?:infection|infeccion)",
        ),
    ),
    Concept(
        "cannot_walk", "can_bear_weight", "none", rx(
            rf"{CANT} {gap(2)}(?:walk|stand|stand up|bear weight|bear any weight|put (?:any |much )?weight|"
            r"put (?:my )?foot down|step on it|weight ?bear\w*|move (?:my )?(?:leg|knee)|get out of bed|get up)",
            r"(?:wont|will not|doesnt) (?:take|hold|bear) (?:any |my )?weight",
            rf"{NO_PUEDO} {gap(2)}(?:caminar|andar|apoyar|pisar|pararme|pararse|ponerme de pie|estar de pie|"
            r"levantarme|mover la pierna|sostenerme)",
            r"no me puedo (?:parar|apoyar|poner de pie|levantar|mover)", r"imposible (?:caminar|andar|apoyar|pisar)",
            r"no (?:aguanta|soporta)\w* (?:el |mi )?peso",
        ),
        high=True, span_negation=False, yields_to=("partial_walk",),
    ),
    Concept(
        "partial_walk", "can_bear_weight", "partial", rx(
            rf"{CANT} {gap(2)}(?:walk|stand|put (?:my |full |all my |all |much )?weight(?: on it)?|"
            r"bear (?:full |all my )?weight) "
            rf"{gap(2)}(?:far|long|much|properly|normally|normal|well|right|fast|without|more than|for long|"
            r"a long way|straight|stairs|up stairs|upstairs|downstairs|very far|that far|too far|too long|like before|"
            r"as much|fully|completely|all the way|100)",
            rf"{NO_PUEDO} {gap(1)}(?:caminar|andar) {gap(1)}(?:bien|mucho|lejos|normal|rapido|sin|todavia)",
        ),
        span_negation=False,
    ),
    Concept(
        "limping", "can_bear_weight", "partial", rx(
            r"limp\w*", r"crutch\w*", r"cane", r"walker", r"hobbl\w*", r"cojea\w*", r"cojo", r"cojeo", r"renguea\w*",
            r"muletas?", r"baston", r"andador",
        ),
    ),
    Concept(
        "calf", "calf_pain_or_swelling_one_leg", True, rx(
            r"calf", r"calfs", r"calve", r"back of (?:my |the )?(?:leg|lower leg)",
            rf"{_LEG} {gap(4)}(?:swollen|swelling|swelled|puffy|bigger|tight|throbbing|cramp\w*|hard and red|"
            r"red and hot|hot and red|hinchad\w*|inflamad\w*|hinchazon)",
            rf"(?:swollen|swelling (?:in|of|on)|puffy|throbbing|cramp\w* in|hinchazon (?:en|de) (?:la |el )?|"
            rf"hinchad\w*|calambres? en (?:la |el )?) {gap(2)}{_LEG}",
            r"pantor+il+as?", r"gemelos?", r"chamorros?",
        ),
        high=True, yields_to=("calf_bilateral", "face_throat"),
    ),
    Concept(
        "calf_bilateral", None, None, rx(
            r"both (?:of )?(?:my )?(?:calves|calfs|legs|ankles)", r"calves", r"legs (?:are )?(?:both )?\w+",
            r"(?:ambas|las dos) (?:\w+ )?(?:pantorrillas|piernas)", r"pantorrillas", r"ambos (?:tobillos|gemelos)",
            r"piernas", r"tobillos",
        ),
    ),
    Concept(
        "bleeding_heavy", "harvest_site_bleeding", "soaking", rx(
            rf"soak\w* {gap(3)}(?:through|bandage|dressing|gauze|pad|band ?aid|bandaid|blood)",
            rf"(?:blood|bandage|dressing|gauze|bandaid) {gap(2)}soak\w*",
            r"(?:bleeding|bled|blood) through", r"(?:wont|will not|doesnt|does not|cant|didnt|hasnt) stop bleeding",
            r"keeps? (?:on )?bleeding", r"bleeding (?:a lot|heavily|lots|badly|like crazy)", r"heavy bleeding",
            r"(?:lots|lot|a lot|so much|loads) of blood", r"blood everywhere", r"dripping blood", r"blood dripping",
            r"pouring", r"gushing", r"empapad\w*", r"empapa", r"empapo",
            r"no (?:para|paraba|deja|dejaba|ha parado) de sangrar", r"sangr\w* mucho", r"mucha sangre",
            r"sigue sangrando", r"chorrea\w*", r"sangrado abundante",
        ),
        high=True, span_negation=False,
    ),
    Concept(
        "bleeding_light", "harvest_site_bleeding", "spotting", rx(
            r"(?:a )?(?:little|tiny|bit of|few drops of|drops? of|spot of|spots of|speck of|dot of|trace of|touch of|"
            r"small amount of|tiny bit of|little bit of|smidge of) (?:\w+ )?(?:blood|bleeding)",
            r"spotting", r"(?:slightly|a bit|a little|little) (?:bloody|blood stained|bloodstained)",
            r"dried blood", r"blood spots?", r"pink (?:on|spot|stain)",
            r"un poco de sangre", r"poquit[oa] de sangre", r"gotitas? de sangre", r"manchitas?",
            r"manchas? de sangre", r"sangr\w* (?:un poco|poquito|un poquito)", r"sangrado leve", r"poco sangrado",
            r"sangre seca",
        ),
    ),
    Concept(
        "bleeding", "harvest_site_bleeding", "soaking", rx(
            r"bleed\w*", r"bled", r"blood", r"bloody", r"sangr\w*", r"hemorr?hag\w*", r"hemorrag\w*",
        ),
        high=True, yields_to=("bleeding_heavy", "bleeding_light", "chest", "blood_other"),
    ),
    Concept(
        "blood_other", None, None, rx(
            r"blood ?(?:thinners?|pressure|tests?|work|sugar|draw|drawn|type|count|clot\w*|results?)", r"bloodwork",
            r"(?:analisis|examen|prueba|presion) de (?:la )?sangre", r"anticoagula\w*", r"sangre (?:para|del) analisis",
            r"(?:aspirin|aspirina|pills?|medication) for (?:my )?blood",
        ),
    ),
    Concept(
        "redness_spreading", "knee_redness", "spreading", rx(
            rf"{_RED} {gap(6)}(?:spread\w*|growing|getting bigger|bigger|larger|expanding|moving up|going up|doubled|"
            r"twice as (?:big|large)|"
            r"going down my|creeping|extend\w*|se extiende|se esta extendiendo|extendiendo|crece|creciendo|mas grande|"
            r"avanza\w*|sube|subiendo)",
            r"red (?:streaks?|lines?)", r"streak\w*", rf"spreading {gap(2)}{_RED}", r"rayas rojas", r"lineas rojas",
            r"(?:se esta|esta) (?:extendiendo|expandiendo) (?:\w+ ){0,2}(?:rojo|roja|enrojecimiento)",
        ),
        high=True,
    ),
    Concept("redness", "knee_redness", "local", rx(_RED), yields_to=("redness_spreading",)),
    Concept(
        "swelling_big", "swelling_trend", "worse", rx(
            r"blew up", r"blown up", r"ballooned", r"(?:twice|double) (?:the|its) (?:normal )?size", r"huge",
            r"massive", r"enorme", r"como un balon", r"muy inflamada",
            r"(?:like|as big as) a (?:balloon|melon|grapefruit)",
            r"balloon\w*", r"como (?:un|una) (?:globo|pelota|melon|toronja)",
        ),
        yields_to=("calf", "face_throat"),
    ),
    Concept(
        "warmth", "knee_warmth", True, rx(
            r"warm", r"warmer", r"warmth", r"hot", r"hotter", r"heat", r"burning", r"on fire", r"caliente",
            r"calientita",
            r"calor", r"ardor", r"arde",
        ),
        yields_to=("heat_other", "fever"),
    ),
    Concept(
        "heat_other", None, None, rx(
            r"(?:hot|warm|heat|heating) (?:shower|bath|tub|pack|pad|water|tea|compress|weather|day|outside|towel|"
            r"therapy|wrap)",
            rf"(?:use|using|used|apply|applying|applied|put|putting|try|trying) {gap(2)}(?:heat|warm|hot)",
            r"(?:ducha|agua|compresa|bolsa|pano|bano|te) (?:\w+ )?(?:caliente|tibia)",
            rf"(?:poner|ponerme|pongo|aplicar|aplico|uso|usar) {gap(2)}(?:calor|caliente)", r"hace (?:mucho )?calor",
            r"calor local", r"ice or heat", r"hielo o calor",
        ),
    ),
    Concept(
        "severe_pain", "severe_pain_words", True, rx(
            r"unbearable", r"excruciating", r"excrutiating",
            r"worst pain (?:of my life|ever|imaginable|i(?:ve| have)? ever)", r"agony", r"agoni[sz]ing",
            r"intolerable", r"insoportable", r"inaguantable", r"atroz",
            rf"{CANT} (?:take|stand|bear|handle|deal with) (?:the |this )?pain",
            r"screaming (?:in|with|from) pain", r"crying (?:in|from|with) (?:the )?pain", r"off the charts",
            r"through the roof", r"(?:el )?peor dolor", r"no (?:lo )?aguanto (?:el dolor|mas|mas el dolor)",
            r"dolor (?:terrible|horrible|insoportable|inaguantable|atroz)",
        ),
        high=True, span_negation=False,
    ),
    Concept(
        "emergency_care", "seeking_emergency_care", True, rx(
            r"911", r"999", r"112", r"ambulance", r"paramedics?", r"emergency (?:room|department)",
            r"(?:the|to|at|in|an) er",
            r"a ?& ?e", r"urgent care", r"hospital", r"hospitali[sz]ed", r"ambulancia", r"urgencias?",
            r"sala de emergencias?", r"emergencias?", r"emergency", r"guardia", r"hospitalizad[oa]",
        ),
        high=True,
    ),
    # --- review ----------------------------------------------------------------------------------------------
    Concept(
        "hives", "allergic_symptoms", "skin_only", rx(
            r"hives", r"rash\w*", r"itchy", r"itching", r"itch\w*", r"welts?", r"red bumps", r"bumps all over",
            r"urticaria", r"skin reaction", r"ronchas?", r"ronchitas", r"sarpullido", r"salpullido", r"picazon",
            r"comezon", r"me pica", r"pica mucho", r"erupcion", r"granitos",
        ),
    ),
    Concept(
        "fall", "fall_or_new_injury", True, rx(
            r"fell", r"fall", r"falls", r"fallen", r"falling (?:down|over)", r"tripped", r"trip(?:ped)? over",
            r"slipped", r"stumbled", r"took a tumble", rf"twist\w* {gap(1)}(?:knee|leg|ankle)",
            rf"tweak\w* {gap(1)}knee", rf"(?:banged|bumped|hit|knocked|smacked|whacked|jammed) {gap(2)}(?:knee|leg)",
            r"new injury", rf"injured {gap(2)}again", r"hurt (?:it|my knee|my leg) again", r"re-?injur\w*",
            r"me cai", r"caida", r"cai", r"me resbale", r"resbal\w*", r"me tropece", r"tropez\w*", r"me torci",
            r"torcedura", r"torci", r"me golpee", r"me di un golpe", r"golpe (?:en|a) la rodilla", r"me pegue",
            r"nueva lesion", r"me lastime (?:otra vez|de nuevo)", r"me volvi a lastimar", r"me lesione",
            r"(?:felt|heard|feel|hear) (?:a |something )?pop\w*", r"popped", r"(?:locked|locking|locks|stuck) up",
            r"(?:gave|give|giving|gives) (?:way|out)", r"buckl\w*", rf"{CANT} {gap(1)}straighten",
            r"(?:senti|escuche|sono) (?:un |como un )?(?:crujido|chasquido|tronido|pop)",
            r"se me (?:bloqueo|trabo|doblo|fue) la rodilla", rf"{NO_PUEDO} (?:estirar|enderezar)",
        ),
        yields_to=("fall_other",), span_negation=False,
    ),
    Concept(
        "fall_other", None, None, rx(
            r"fall(?:ing)? asleep", r"fell asleep", r"(?:in|this|last|next) fall", r"fall (?:back|behind|apart|into)",
            rf"(?:afraid|scared|worried|careful|prevent|avoid|not to|dont want to|fear) {gap(3)}fall\w*",
            rf"(?:miedo|cuidado) {gap(3)}(?:caer\w*|caida)", r"cai en cuenta", r"fall risk",
            rf"(?:tripped|slipped|stumbled) {gap(4)}(?:didnt|did not|without|but no|no) fall\w*",
            r"(?:almost|nearly) (?:fell|fall\w*|tripped|slipped)", r"casi me cai\w*",
        ),
    ),
    Concept(
        "numbness", "numbness_or_weakness", True, rx(
            r"numb", r"numbness", r"tingl\w*", r"pins and needles", r"weak", r"weakness",
            rf"{CANT} feel (?:my )?(?:foot|leg|toes)", r"foot drop", r"dead leg", r"entumid\w*", r"entumecid\w*",
            r"adormecid\w*", r"dormida", r"hormigueo", r"hormigas", r"debil", r"debilidad",
            r"no siento (?:la |el |mi )?(?:pierna|pie)", rf"(?:foot|leg|toes|pie|pierna) {gap(3)}(?:asleep|dormid[oa])",
            r"(?:se me )?(?:durmi\w*|duerme) (?:la|el|mi) (?:pierna|pie)",
        ),
    ),
    Concept(
        "dizziness", "dizziness", True, rx(
            r"dizzy", r"dizziness", r"light ?headed\w*", r"vertigo", r"room (?:is )?spinning",
            r"(?:feel|feeling|felt) faint", r"mareos?", r"maread[oa]", r"me mareo", r"aturdid[oa]",
        ),
    ),
    Concept(
        "unwell", "feels_unwell", True, rx(
            rf"(?:feel|feeling|felt|feels) {gap(2)}(?:awful|terrible|sick|ill|unwell|horrible|like crap|like death|"
            r"like garbage|lousy|rough|crappy|run down|rundown|flu\w*)",
            r"flu ?-? ?like", r"the flu", r"flu symptoms", r"achy all over", r"aches all over", r"body aches",
            r"vomit\w*", r"throwing up", r"threw up", r"nause\w*", r"sick to my stomach", r"malestar",
            rf"me siento {gap(2)}(?:mal|enferm[oa]|fatal|horrible|pesim[oa])", r"dolor de cuerpo",
            r"cuerpo cortado", r"gripe", r"decaid[oa]", r"sin fuerzas",
            r"(?:not|dont|arent|am not|im not) (?:feeling|feel) (?:so |very |too |that )?(?:well|good|great|right)",
            r"no me siento (?:muy |nada )?bien",
        ),
        span_negation=False,
    ),
    Concept(
        "worse", "getting_worse", True, rx(
            r"(?:getting|gotten|got|get|gets|is|its|it is|much|even|way|keeps getting|been getting|feels|looks|"
            r"growing) worse",
            r"worse and worse", r"worse (?:every|each) day", r"worse (?:than|then) (?:yesterday|before|last)",
            r"worsening", r"cada (?:dia|vez) (?:mas )?peor", r"empeor\w*", r"esta peor", r"va a peor",
            r"peor que (?:ayer|antes)",
        ),
    ),
    Concept(
        "help", "help_requested", True, rx(
            r"help me", r"help us", r"need help", r"needs help", r"need some help", r"please help", r"help please",
            r"sos", r"(?:please |pls |plz )?call me", r"call me back",
            r"(?:can|could) (?:someone|somebody|a doctor|the doctor|a nurse|you) (?:please )?call",
            r"need to (?:talk|speak) (?:to|with) (?:a|the|my) (?:doctor|nurse|dr|physician)",
            r"need (?:a|the|my) (?:doctor|nurse|dr)", r"ayuda\w*", r"auxilio", r"socorro", r"llam(?:e|a)nme",
            r"llamame", r"necesito hablar con (?:el|la|un|una) (?:doctor|doctora|medico|medica|enfermer[oa])",
            r"necesito (?:un|una|al|a la) (?:doctor|doctora|medico|medica)", r"urgent", r"urgently", r"asap",
            r"urgente",
        ),
        yields_in_segment=("appointment",),
    ),
    Concept(
        "appointment", None, None, rx(
            r"appointment", r"appt", r"reschedul\w*", r"schedul\w*", r"booking", r"book", r"cita", r"turno",
            r"reprogram\w*", r"visit",
        ),
    ),
    # --- routine ---------------------------------------------------------------------------------------------
    Concept(
        "nsaid", "nsaid_taken", True, rx(
            r"ibuprofen\w*", r"ibuprofeno", r"advil", r"motrin", r"aleve", r"naproxen\w*", r"naproxeno", r"nurofen",
            r"diclofenac\w*", r"voltaren", r"meloxicam", r"celebrex", r"celecoxib", r"aspirin", r"aspirina",
            r"nsaids?", r"aines?", r"anti ?-? ?inflammator\w*", r"antiinflamatori\w*", r"anti inflamatori\w*",
            r"excedrin",
        ),
    ),
)

CONCEPT_BY_NAME = {c.name: c for c in CONCEPTS}

# Red flags a clinician still checks when the patient says they have passed (a fever that came and went in week 1).
RECHECK_IF_RESOLVED = frozenset({"fever", "chills", "temperature", "breathing", "chest", "face_throat", "fainting",
                                 "calf", "pus", "infection", "drainage"})
# Medicines that bring a fever down: a fever "gone" after one of these may only be masked.
ANTIPYRETICS = rx(r"tylenol", r"paracetamol", r"acetaminophen", r"acetaminofen", r"panadol", r"ibuprofen\w*",
                  r"ibuprofeno", r"advil", r"motrin", r"aleve", r"naproxen\w*", r"aspirin", r"aspirina", r"nurofen",
                  r"tempra", r"dolex", r"fever reducer", r"antipyretic\w*", r"antitermico", r"antipiretico")

# --- knee swelling and its trend (read per clause, not by a single pattern) ------------------------------------
SWELLING = rx(r"swell\w*", r"swollen", r"puffy", r"puffiness", r"effusion", r"hinchad\w*", r"hinchazon",
              r"hincha\w*", r"inflamad\w*", r"inflamacion", r"desinflam\w*")
SWELLING_SAME = rx(
    r"(?:not|isnt|hasnt|no) (?:any |much |really |getting |gotten )?(?:better|improving|improved|going down|"
    r"gone down|smaller|less)", r"no better", r"not changed", r"hasnt changed", r"no change", r"unchanged", r"same",
    r"still", r"sigue", r"siguen", r"todavia", r"aun", r"igual", r"no (?:ha )?mejora\w*", r"no (?:ha )?baja\w*",
    r"no se (?:quita|baja|desinflama|va)", r"persist\w*",
)
SWELLING_WORSE = rx(
    r"worse", r"worsening", r"more (?:swollen|swelling|puffy)", r"bigger", r"larger", r"increas\w*", r"growing",
    r"swelling up", r"swelled up", r"peor", r"mas (?:hinchad\w*|inflamad\w*|hinchazon)", r"aumenta\w*", r"crec\w*",
    r"empeor\w*", r"cada vez mas", r"se hincha mas",
)
SWELLING_BETTER = rx(
    r"better", r"less", r"going down", r"gone down", r"went down", r"down", r"improv\w*", r"smaller", r"reduc\w*",
    r"decreas\w*", r"settl\w*", r"mejor", r"menos", r"bajando", r"bajo", r"ha bajado", r"desinflam\w*",
    r"mejorando", r"disminu\w*", r"gone", r"went away", r"se fue", r"se quito",
)
NOT_WORSE = rx(r"(?:not|no|isnt|hasnt|no esta|no) (?:any |getting |gotten )?(?:worse|peor|bigger|more)")

# --- context words ----------------------------------------------------------------------------------------
NEGATIONS = frozenset({
    "no", "not", "never", "without", "denies", "deny", "denied", "dont", "doesnt", "didnt", "isnt", "arent",
    "wasnt", "werent", "havent", "hasnt", "hadnt", "none", "nor", "neither", "nope", "negative", "zero",
    "sin", "nunca", "ni", "tampoco", "ningun", "ninguna", "ninguno", "niega", "niego", "nada",
})
# "no" followed by these is not a negation of what follows ("no better" = same; "not sure").
PSEUDO_AFTER = frozenset({"better", "mejor", "idea", "doubt", "change", "improvement", "mejora", "sure", "seguro",
                          "segura", "se", "puedo", "know", "clue", "only", "just", "solo", "wonder", "worse"})
POST_NEGATIONS = frozenset({"no", "none", "nope", "negative", "nada", "ninguna", "ninguno", "free", "libre", "nil"})
# "calf fine", "la pantorrilla bien": only right after the concept, and not after "can't breathe well".
POST_OK = frozenset({"fine", "ok", "okay", "normal", "good", "bien", "perfect", "perfecto", "clear", "alright"})
LIST_CONNECTORS = frozenset({",", "and", "or", "y", "o", "u", "e", "nor", "ni", "&", "/", "any", "a", "the", "la", "el",
                             "de", "of", "my", "mi", "signs", "sign", "señales", "senales", "signos"})
SCOPE_BREAKERS = frozenset({"but", "pero", "aunque", "though", "although", "however", "because", "porque", "except",
                            "excepto", "salvo", "then", "luego", "now", "ahora", "today", "hoy", "so", "asi",
                            "still", "todavia", "aun", "since", "desde", "yet"})
RESOLVED_PRE = rx(r"no longer", r"no more", r"ya no", r"not anymore", r"not any more", r"nunca mas")
RESOLVED_POST = rx(
    r"gone", r"went away", r"go away", r"resolved", r"better now", r"ok now", r"okay now", r"fine now", r"settled",
    r"stopped", r"disappeared", r"cleared", r"cleared up", r"passed", r"subsided", r"went down", r"gone down",
    r"broke", r"anymore", r"any more", r"(?:been )?(?:normal|fine|ok|okay|good) since", r"normal (?:now|today)",
    r"none since", r"not since", r"nothing since", r"no more since", r"se fue", r"se quito", r"se me quito",
    r"desaparecio", r"ya paso", r"paso",
    r"se calmo", r"bajo", r"se me paso", r"ya se me paso", r"se resolvio", r"ya no",
)
NOT_RESOLVED = rx(r"(?:not|hasnt|hasn t|havent|didnt|never|no|isnt|wont|doesnt|not yet) "
                  r"(?:\w+ ){0,1}(?:gone|go away|went away|stopped|resolved|cleared|passed|settled|broke)",
                  r"no se (?:ha )?(?:ido|quitado|va|quita|pasa|calma)", r"no (?:ha )?(?:bajado|baja|desaparecido)")
PAST = frozenset({"was", "were", "had", "yesterday", "ago", "earlier", "previously", "before", "used", "first",
                  "ayer", "anoche", "tuve", "tenia", "estaba", "estuvo", "fue", "hace", "antes", "primer", "primeros",
                  "durante", "tuvo", "habia"})
PAST_PHRASES = rx(r"last night", r"the other day", r"on day \d+", r"day (?:one|two|three|1|2|3)", r"at first",
                  r"al principio", r"el (?:dia|primer dia) \d*", r"los primeros dias",
                  r"the first (?:day|few days|night)")
PRESENT = frozenset({"now", "today", "currently", "still", "tonight", "ahora", "hoy", "todavia", "aun", "sigue",
                     "siguen", "actualmente", "continua", "keeps", "ongoing", "is", "am", "are", "have", "has", "its",
                     "im",
                     "tengo", "tiene", "estoy", "esta", "siento"})
HYPOTHETICAL = rx(r"if", r"in case", r"what if", r"whether", r"en caso", r"signs of", r"watch (?:out )?for",
                  r"look out for", r"symptoms of", r"sintomas de", r"senales de", r"warning signs", r"supposed to",
                  r"what happens when", r"should i worry about", r"what do i do if", r"que hago si", r"que pasa si")
HEDGES = rx(r"i think", r"maybe", r"might", r"may", r"possibly", r"probably", r"i guess", r"kind of", r"kinda",
            r"sort of", r"a bit", r"a little", r"slight\w*", r"not sure", r"creo", r"quizas?", r"tal vez", r"puede que",
            r"parece", r"como que", r"un poco", r"medio")
# Who it is about.
RELATIONS = (
    r"husband|wife|hubby|spouse|partner|boyfriend|girlfriend|son|daughter|kid|kids|child|children|baby|mom|mum|"
    r"mother|dad|father|brother|sister|friend|grandson|granddaughter|grandma|grandpa|grandmother|grandfather|neighbou?r|"
    r"roommate|coworker|colleague|boss|dog|cat|esposo|esposa|marido|mujer|pareja|novio|novia|hijo|hija|hijos|hijas|"
    r"nino|nina|ninos|bebe|mama|madre|papa|padre|hermano|hermana|amigo|amiga|nieto|nieta|abuela|abuelo|vecino|vecina|"
    r"companero|companera|jefe|perro|gato|suegra|suegro|tio|tia|primo|prima|sobrino|sobrina"
)
OTHER_PERSON = rx(rf"(?:my|mi|mis|our|nuestr[oa]s?|his|her|their|su|sus) (?:\w+ )?(?:{RELATIONS})")
FIRST_PERSON = frozenset({"i", "im", "ive", "id", "ill", "me", "my", "mine", "myself", "yo", "mi", "tengo", "estoy",
                          "siento", "puedo", "tuve", "noto", "camino", "duermo", "mio", "mia"})
THIRD_PERSON = frozenset({"he", "she", "hes", "shes", "him", "his", "her", "ella", "le", "they"})
ALSO = rx(r"too", r"also", r"as well", r"tambien", r"both", r"ambos", r"ambas", r"me too", r"igual que yo",
         r"so do i", r"so have i", r"as do i", r"yo tambien")
PROXY = rx(
    r"(?:writing|texting|messaging|replying|answering|responding|typing) (?:\w+ ){0,2}(?:for|on behalf of)",
    r"on behalf of", r"(?:he|she|they) (?:had|got) the (?:injection|procedure|shot|treatment)",
    rf"(?:my|our) (?:{RELATIONS}) (?:\w+ )?(?:had|got|has had) (?:the|her|his|an?) (?:injection|procedure|shot|"
    r"treatment|stem cell)", r"(?:is|was) (?:the|your) patient", r"es (?:el|la) paciente",
    r"(?:escribo|escribimos|respondo|contesto) (?:\w+ ){0,2}(?:por|de parte de|para)", r"de parte de",
    r"\( (?:la |el |the |is the )?(?:paciente|patient) \)",
    rf"(?:this is|its|it is|habla|le habla|les habla|aqui) (?:his|her|their|su|the patients?) (?:{RELATIONS})",
    rf"(?:le |les )?(?:escribe|habla) (?:la|el|su) (?:{RELATIONS})", rf"soy (?:la|el) (?:{RELATIONS}) de",
    r"le (?:pusieron|hicieron|aplicaron) (?:la|el) (?:inyeccion|procedimiento)",
    rf"(?:i am|im|soy) (?:his|her|their|su) (?:{RELATIONS})",
)
# Pain and temperature numbers.
NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "cero": 0, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7,
    "ocho": 8, "nueve": 9, "diez": 10,
}
PAIN_WORDS = frozenset({"pain", "pains", "painful", "hurts", "hurt", "hurting", "ache", "aches", "aching", "sore",
                        "soreness", "dolor", "dolores", "duele", "dolio", "duelen", "molestia", "molestias", "level",
                        "nivel", "escala", "scale", "rate", "rated", "rating", "nrs"})
OUT_OF_TEN = rx(r"/ (?:10|ten)", r"out of (?:10|ten)", r"(?:de|sobre|over) (?:10|diez)", r"en (?:10|diez)")
NOT_PAIN_BEFORE = frozenset({"day", "days", "dia", "dias", "since", "desde", "at", "las", "x", "week", "weeks",
                             "semana", "hace", "for", "por", "every", "cada", "about", "around", "took", "tome",
                             "take", "taking", "tomo", "age", "aged", "step", "steps", "walked", "minutes", "number",
                             "no", "#", "room", "the"})
NOT_A_MEASURE_AFTER = frozenset({
    "mg", "ml", "kg", "lb", "lbs", "pounds", "libras", "min", "mins", "minutes", "minutos", "hours", "hour", "hrs",
    "horas", "hora", "steps", "pasos", "meters", "metres", "metros", "m", "km", "miles", "millas", "feet", "ft",
    "years", "anos", "year", "%", "times", "veces", "vez", "pills", "pill", "tablets", "tabs", "pastillas", "am", "pm",
    "days", "dias", "day", "weeks", "semanas", "months", "meses", "blocks", "cuadras", "reps", "sets", "seconds",
    "secs", "segundos", "stairs", "flights", "escalones", "people", "personas", "units", "bpm", "cm", "inches",
})
TEMP_WORDS = frozenset({"temp", "temps", "temperature", "temperatures", "thermometer", "termometro", "temperatura",
                        "fiebre", "calentura", "febril", "fever", "feverish", "degrees", "grados", "reading", "read",
                        "reads", "marca", "marcaba", "tenia", "running", "spiked", "spiking", "hit", "up", "to"})
TEMP_UNITS_C = frozenset({"c", "celsius", "centigrados", "centigrade", "centigrado"})
TEMP_UNITS_F = frozenset({"f", "fahrenheit", "farenheit", "fahrenheight", "farenheight"})
TEMP_UNITS_ANY = frozenset({"deg", "degree", "degrees", "grados", "grado"})
FEVER_C = 38.0  # the reader's own notion of "a concerning temperature" (clinical.md §2.2); rules keep theirs

# Whole messages that are not free text for a person to read: carrier keywords and acknowledgements.
KEYWORDS = frozenset({
    "stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "start", "unstop", "yes", "y", "si",
    "siyes", "no", "n", "info", "revoke", "optout", "opt out", "optin", "opt in", "baja", "alta", "parar", "detener",
    "ok", "okay", "k", "kk", "okey", "oki", "thanks", "thank you", "thanks so much", "thank you so much", "thx", "ty",
    "tks", "gracias", "muchas gracias", "mil gracias", "got it", "will do", "perfect", "perfecto", "vale",
    "de acuerdo", "entendido", "ok thanks", "ok thank you", "ok gracias", "okay thanks", "sounds good", "received",
    "recibido", "noted",
})
# Tokens that are never spelling-corrected towards a red-flag word (real words one letter away from one).
FUZZY_TERMS = ("breath", "fiebre", "escalofrios", "pantorrilla", "respirar", "breathe", "breathing", "temperature",
               "temperatura", "bleeding", "sangrando", "supurando", "hinchada", "hinchado", "hinchazon", "swollen",
               "swelling", "infection", "infected", "infeccion", "shortness", "unbearable", "insoportable",
               "calentura", "ambulance", "ambulancia", "emergency", "emergencia", "urgencias", "ibuprofen",
               "ibuprofeno", "numbness", "tingling", "hormigueo", "dizziness", "escalofrio", "excruciating")
FUZZY_PROTECTED = frozenset({"injection", "injections", "injected", "injecting", "inyeccion", "inyectado",
                             "inyectada", "inyecciones", "fibre", "fiber", "infested", "breeding", "bleeping",
                             "tinkling", "emergence", "breadth",
                             "temperate", "sangria", "shallow"})
