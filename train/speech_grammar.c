/*
 * speech_grammar.c — templates and word lists of the speech corpus (see speech_grammar.h).
 *
 * A template is a string of words and {slot} references. A slot is either a list of alternative templates (picked
 * uniformly, expanded recursively) or a built-in generator for numbers, digits, times, dates, money and spellings.
 * The vocabulary is read off the same tables, so it cannot drift from what the grammar says.
 */
#include "speech_grammar.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers ---------------------------------------------------------------------------------------------- */

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t acms_hash(uint64_t a, uint64_t b, uint64_t c) {
    return mix((mix(mix(a + 0x9e3779b97f4a7c15ULL) ^ b) + 0x632be59bd9b4e019ULL) ^ c);
}

void acms_rng_seed(acms_rng *r, uint64_t seed, uint64_t stream, uint64_t index) {
    r->s = acms_hash(seed, stream, index);
}

uint64_t acms_rng_u64(acms_rng *r) {
    r->s += 0x9e3779b97f4a7c15ULL;
    return mix(r->s);
}

uint32_t acms_rng_below(acms_rng *r, uint32_t n) { return (uint32_t)(((acms_rng_u64(r) >> 32) * (uint64_t)n) >> 32); }

double acms_rng_uniform(acms_rng *r) { return (double)(acms_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

double acms_rng_range(acms_rng *r, double lo, double hi) { return lo + (hi - lo) * acms_rng_uniform(r); }

double acms_rng_normal(acms_rng *r) {
    double u = acms_rng_uniform(r), v = acms_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(2.0 * M_PI * v);
}

/* ---- word lists -------------------------------------------------------------------------------------------------- */

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const ONES[] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                                   "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                                   "seventeen", "eighteen", "nineteen"};
static const char *const TENS[] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty",
                                   "ninety"};
static const char *const ORD[] = {"", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
                                  "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
                                  "sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth"};
static const char *const MONTHS[] = {"january", "february", "march", "april", "may", "june", "july", "august",
                                     "september", "october", "november", "december"};
static const char *const LETTERS[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m",
                                      "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z"};
static const char *const NATO[] = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
                                   "india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa",
                                   "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "x ray",
                                   "yankee", "zulu"};
/* extra words the generators say */
static const char *const GENWORDS[] = {"hundred", "thousand", "and", "oh", "double", "o'clock",
                                       "quarter", "half", "past", "to", "a", "m", "p", "noon", "midnight", "thirtieth",
                                       "the", "of", "dollars", "dollar", "cents", "cent", "euros", "pounds"};

typedef struct {
    const char *name;
    const char *const *alts;
    int n;
} slot_t;

static const char *const S_PLEASE[] = {"", "", "", "please", "could you", "can you", "i want to", "i'd like to",
                                       "hey assistant", "okay"};
static const char *const S_NAME[] = {"mom", "dad", "john", "mary", "david", "sarah", "michael", "emma", "james",
                                     "olivia", "robert", "linda", "william", "sophia", "thomas", "anna", "peter",
                                     "grace", "daniel", "laura", "the office", "the doctor", "my sister",
                                     "my brother", "customer service", "the front desk"};
static const char *const S_CITY[] = {"boston", "chicago", "denver", "seattle", "new york", "london", "paris",
                                     "berlin", "tokyo", "toronto", "dallas", "miami", "atlanta", "phoenix",
                                     "san francisco", "los angeles", "madrid", "rome", "dublin", "sydney"};
static const char *const S_ROOM[] = {"kitchen", "living room", "bedroom", "bathroom", "garage", "office",
                                     "hallway", "basement", "dining room", "garden"};
static const char *const S_DEVICE[] = {"lights", "lamp", "fan", "heater", "air conditioner", "television", "radio",
                                       "coffee machine", "dishwasher", "washing machine", "alarm", "speaker"};
static const char *const S_GENRE[] = {"jazz", "rock", "classical music", "the news", "pop music", "country music",
                                      "some relaxing music", "my playlist", "the radio", "a podcast", "blues"};
static const char *const S_ITEM[] = {"milk", "bread", "eggs", "coffee", "apples", "butter", "cheese", "rice",
                                     "tomatoes", "bananas", "chicken", "water", "orange juice", "batteries",
                                     "paper towels", "soap"};
static const char *const S_TASK[] = {"call {name}", "buy {item}", "pay the electricity bill", "water the plants",
                                     "take my medicine", "pick up the kids", "send the report", "book a table",
                                     "check the mail", "feed the cat", "walk the dog", "renew my passport"};
static const char *const S_PLACE[] = {"the nearest gas station", "the airport", "the train station", "home", "work",
                                      "the hospital", "the closest pharmacy", "a coffee shop", "the city center",
                                      "the hotel", "the supermarket", "{city}"};
static const char *const S_DAY[] = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
                                    "today", "tomorrow", "tonight", "next week", "this weekend"};
static const char *const S_UNIT[] = {"seconds", "minutes", "hours"};
static const char *const S_ACCOUNT[] = {"checking account", "savings account", "credit card", "phone bill",
                                        "internet bill", "rent"};
static const char *const S_ANSWER[] = {"yes", "no", "yes please", "no thank you", "correct", "that's right",
                                       "that's wrong", "repeat that please", "i don't know", "go back",
                                       "main menu", "speak to an agent", "operator", "cancel", "stop", "help",
                                       "start over", "thank you", "goodbye", "hello"};
static const char *const S_SUIT[] = {"clubs", "spades", "hearts", "diamonds"};
static const char *const S_RANK[] = {"ace", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                                     "jack", "queen", "king"};
static const char *const S_WEATHER[] = {"weather", "temperature", "forecast", "chance of rain", "wind speed"};
static const char *const S_CODEWORD[] = {"confirmation code", "reference number", "booking code", "postcode",
                                         "license plate", "flight number", "order number", "password"};
static const char *const S_SPELLER[] = {"my name is spelled", "the last name is", "that's spelled", "spell",
                                        "the letters are", "it's", "my initials are"};

/* Top-level templates by kind. */
static const char *const T_DIGITS[] = {"{digits}", "my account number is {digits}", "the code is {digits}",
                                       "enter {digits}", "my pin is {digits4}", "extension {digits4}",
                                       "the verification code is {digits}", "card ending in {digits4}",
                                       "{please} dial {digits}", "room {digits3}"};
static const char *const T_PHONE[] = {"{please} call {phone}", "my number is {phone}", "dial {phone}",
                                      "you can reach me at {phone}", "{phone}", "send a text to {phone}",
                                      "the phone number is {phone}", "call me back on {phone}"};
static const char *const T_NUMBER[] = {"{please} set the volume to {n100}", "set the temperature to {n100} degrees",
                                       "{number}", "i need {n100} {item}", "we have {number} customers",
                                       "turn it up by {n10}", "go to page {n1000}", "order {n10} {item}",
                                       "it weighs {n1000} pounds", "the distance is {n1000} miles",
                                       "my score was {number}", "move {n100} meters forward"};
static const char *const T_TIME[] = {"{please} set an alarm for {time}", "wake me up at {time}",
                                     "remind me to {task} at {time}", "schedule a call at {time} {day}",
                                     "the meeting is at {time}", "what's on my calendar at {time}",
                                     "{please} set a timer for {n100} {unit}", "is the store open at {time}",
                                     "book a table for {n10} at {time}", "the train leaves at {time}",
                                     "move my appointment to {time} {day}", "what time is it in {city}"};
static const char *const T_DATE[] = {"{please} schedule a meeting on {date}", "my birthday is {date}",
                                     "book a flight to {city} on {date}", "the payment is due on {date}",
                                     "remind me on {date} to {task}", "what day is {date}",
                                     "i was born on {date} {year}", "the deadline is {date}",
                                     "cancel my appointment on {date}", "check in on {date} check out on {date}"};
static const char *const T_MONEY[] = {"{please} pay {money}", "transfer {money} to my {account}",
                                      "send {money} to {name}", "my balance is {money}", "the total is {money}",
                                      "pay my {account}", "how much is my {account}", "it costs {money}",
                                      "withdraw {money}", "i owe {name} {money}", "add {money} to my {account}"};
static const char *const T_SPELL[] = {"{speller} {letters}", "{letters}", "{speller} {letters} {letters}",
                                      "my email is {letters} at {letters} dot com", "{letters} as in {nato}"};
static const char *const T_NATO[] = {"{nato_seq}", "my {codeword} is {nato_seq}", "the {codeword} is {mixed}",
                                     "{codeword} {mixed}", "i spell {nato_seq}", "that's {nato} {nato} {digits3}"};
static const char *const T_CARDS[] = {"{rank} of {suit}", "play the {rank} of {suit}", "i have the {rank} of {suit}",
                                      "{rank} of {suit} {rank} of {suit}", "draw a card", "deal the cards",
                                      "put the {rank} of {suit} on the {rank} of {suit}"};
static const char *const T_COMMAND[] = {
    "{please} turn on the {room} {device}", "{please} turn off the {device}", "{please} turn off the {room} {device}",
    "dim the {room} lights", "{please} play {genre}", "play {genre} in the {room}", "pause the music", "next song",
    "what's the {weather} {day}", "what's the {weather} in {city} {day}", "will it rain {day}",
    "navigate to {place}", "how long does it take to get to {place}", "find {place}", "{please} call {name}",
    "read my messages", "send a message to {name}", "{please} add {item} to my shopping list",
    "add {item} and {item} to the list", "remind me to {task}", "remind me to {task} {day}", "check my {account}",
    "what's my {account} balance", "open the garage door", "lock the front door", "is the back door locked",
    "{answer}", "{answer}", "{answer} {answer}", "cancel my order", "track my package", "where is my order",
    "i want to speak to {name}", "leave a message for {name}", "what's on my calendar {day}",
    "cancel all my alarms", "turn up the volume", "turn down the volume", "mute the {device}",
    "i'd like to book a room in {city} for {n10} nights", "how do i get to {city} from {city}"};

static const slot_t SLOTS[] = {
#define S(n, a) {n, a, N(a)}
    S("please", S_PLEASE),   S("name", S_NAME),       S("city", S_CITY),       S("room", S_ROOM),
    S("device", S_DEVICE),   S("genre", S_GENRE),     S("item", S_ITEM),       S("task", S_TASK),
    S("place", S_PLACE),     S("day", S_DAY),         S("unit", S_UNIT),       S("account", S_ACCOUNT),
    S("answer", S_ANSWER),   S("suit", S_SUIT),       S("rank", S_RANK),       S("weather", S_WEATHER),
    S("codeword", S_CODEWORD), S("speller", S_SPELLER),
#undef S
};

static const struct {
    acms_kind kind;
    const char *const *t;
    int n;
    int weight; /* relative frequency of the kind */
} KINDS[] = {
    {ACMS_KIND_DIGITS, T_DIGITS, N(T_DIGITS), 10}, {ACMS_KIND_PHONE, T_PHONE, N(T_PHONE), 8},
    {ACMS_KIND_NUMBER, T_NUMBER, N(T_NUMBER), 10}, {ACMS_KIND_TIME, T_TIME, N(T_TIME), 10},
    {ACMS_KIND_DATE, T_DATE, N(T_DATE), 8},        {ACMS_KIND_MONEY, T_MONEY, N(T_MONEY), 9},
    {ACMS_KIND_SPELL, T_SPELL, N(T_SPELL), 6},     {ACMS_KIND_NATO, T_NATO, N(T_NATO), 6},
    {ACMS_KIND_CARDS, T_CARDS, N(T_CARDS), 3},     {ACMS_KIND_COMMAND, T_COMMAND, N(T_COMMAND), 30},
};

const char *acms_kind_name(acms_kind k) {
    static const char *const names[] = {
#define X(e, s) s,
        ACMS_KIND_LIST(X)
#undef X
    };
    return (unsigned)k < ACMS_KIND_COUNT ? names[k] : "?";
}

/* ---- expansion --------------------------------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
    acms_rng *r;
} buf_t;

static void word(buf_t *b, const char *w) {
    size_t k = strlen(w);
    if (!k) return;
    if (b->n + k + 2 >= b->cap) return; /* cannot happen within ACMS_MAX_TEXT; never overflow */
    if (b->n) b->p[b->n++] = ' ';
    memcpy(b->p + b->n, w, k);
    b->n += k;
    b->p[b->n] = 0;
}

static const char *pick(acms_rng *r, const char *const *a, int n) { return a[acms_rng_below(r, (uint32_t)n)]; }

/* 0 .. 999999 in words ("two hundred and five", "twelve thousand three hundred") */
static void number_words(buf_t *b, uint32_t v) {
    if (v >= 1000) {
        number_words(b, v / 1000);
        word(b, "thousand");
        v %= 1000;
        if (!v) return;
        if (v < 100) word(b, "and");
    }
    if (v >= 100) {
        word(b, ONES[v / 100]);
        word(b, "hundred");
        v %= 100;
        if (!v) return;
        word(b, "and");
    }
    if (v < 20) word(b, ONES[v]);
    else {
        word(b, TENS[v / 10]);
        if (v % 10) word(b, ONES[v % 10]);
    }
}

static void digit_seq(buf_t *b, int len) {
    acms_rng *r = b->r;
    for (int i = 0; i < len; i++) {
        uint32_t d = acms_rng_below(r, 10);
        /* repeats are sometimes said "double five"; zero is sometimes "oh" */
        if (i + 1 < len && acms_rng_below(r, 8) == 0) {
            word(b, "double");
            word(b, d == 0 && acms_rng_below(r, 2) ? "oh" : ONES[d]);
            i++;
            continue;
        }
        word(b, d == 0 && acms_rng_below(r, 3) == 0 ? "oh" : ONES[d]);
    }
}

static void ordinal(buf_t *b, uint32_t d) { /* 1 .. 31 */
    if (d <= 20) word(b, ORD[d]);
    else if (d == 30) word(b, "thirtieth");
    else {
        word(b, TENS[d / 10]);
        word(b, ORD[d % 10]);
    }
}

static void time_words(buf_t *b) {
    acms_rng *r = b->r;
    uint32_t h = 1 + acms_rng_below(r, 12), m = acms_rng_below(r, 12) * 5, style = acms_rng_below(r, 10);
    if (style == 0) {
        word(b, acms_rng_below(r, 2) ? "noon" : "midnight");
        return;
    }
    if (style <= 2 && m != 0) {
        /* quarter past, half past, quarter to */
        static const char *const rel[] = {"quarter past", "half past", "quarter to"};
        int k = (int)acms_rng_below(r, 3);
        word(b, rel[k]);
        word(b, ONES[k == 2 ? h % 12 + 1 : h]);
    } else {
        word(b, ONES[h]);
        if (m == 0) word(b, acms_rng_below(r, 2) ? "o'clock" : "");
        else if (m < 10) {
            word(b, "oh");
            word(b, ONES[m]);
        } else number_words(b, m);
    }
    uint32_t suffix = acms_rng_below(r, 3);
    if (suffix == 1) word(b, "a m");
    else if (suffix == 2) word(b, "p m");
}

static void date_words(buf_t *b) {
    acms_rng *r = b->r;
    uint32_t mo = acms_rng_below(r, 12), d = 1 + acms_rng_below(r, 28 + (mo != 1 ? 2 : 0) + (mo % 2 == 0));
    if (d > 31) d = 31;
    if (acms_rng_below(r, 2)) {
        word(b, MONTHS[mo]);
        ordinal(b, d);
    } else {
        word(b, "the");
        ordinal(b, d);
        word(b, "of");
        word(b, MONTHS[mo]);
    }
}

static void year_words(buf_t *b) {
    uint32_t y = 1940 + acms_rng_below(b->r, 86);
    if (y >= 2000 && y < 2010) number_words(b, y);
    else {
        number_words(b, y / 100);
        if (y % 100 < 10) {
            word(b, "oh");
            word(b, ONES[y % 100]);
        } else number_words(b, y % 100);
    }
}

static void money_words(buf_t *b) {
    acms_rng *r = b->r;
    static const char *const cur[] = {"dollars", "euros", "pounds"};
    uint32_t mag = acms_rng_below(r, 4), v = acms_rng_below(r, mag == 0 ? 20 : mag == 1 ? 100 : mag == 2 ? 1000 : 20000);
    if (v == 0) v = 1 + acms_rng_below(r, 9);
    number_words(b, v);
    word(b, v == 1 ? "dollar" : pick(r, cur, 3));
    if (acms_rng_below(r, 3) == 0) {
        uint32_t c = 1 + acms_rng_below(r, 99);
        word(b, "and");
        number_words(b, c);
        word(b, c == 1 ? "cent" : "cents");
    }
}

static void expand(buf_t *b, const char *t, int depth);

static void slot(buf_t *b, const char *name, size_t len, int depth) {
    acms_rng *r = b->r;
#define IS(s) (len == strlen(s) && !memcmp(name, s, len))
    if (IS("digits")) digit_seq(b, 3 + (int)acms_rng_below(r, 8));
    else if (IS("digits3")) digit_seq(b, 3);
    else if (IS("digits4")) digit_seq(b, 4);
    else if (IS("phone")) {
        digit_seq(b, 3);
        digit_seq(b, 3);
        digit_seq(b, 4);
    } else if (IS("number")) number_words(b, acms_rng_below(r, 4) == 0 ? acms_rng_below(r, 1000000) : acms_rng_below(r, 1000));
    else if (IS("n10")) number_words(b, 1 + acms_rng_below(r, 10));
    else if (IS("n100")) number_words(b, 1 + acms_rng_below(r, 100));
    else if (IS("n1000")) number_words(b, 1 + acms_rng_below(r, 1000));
    else if (IS("time")) time_words(b);
    else if (IS("date")) date_words(b);
    else if (IS("year")) year_words(b);
    else if (IS("money")) money_words(b);
    else if (IS("letters")) {
        int n = 2 + (int)acms_rng_below(r, 6);
        for (int i = 0; i < n; i++) word(b, pick(r, LETTERS, N(LETTERS)));
    } else if (IS("nato")) word(b, pick(r, NATO, N(NATO)));
    else if (IS("nato_seq")) {
        int n = 2 + (int)acms_rng_below(r, 5);
        for (int i = 0; i < n; i++) word(b, pick(r, NATO, N(NATO)));
    } else if (IS("mixed")) { /* NATO letters and digits, like a booking code */
        int n = 4 + (int)acms_rng_below(r, 4);
        for (int i = 0; i < n; i++)
            word(b, acms_rng_below(r, 2) ? pick(r, NATO, N(NATO)) : ONES[acms_rng_below(r, 10)]);
    } else {
        for (size_t i = 0; i < sizeof SLOTS / sizeof SLOTS[0]; i++)
            if (IS(SLOTS[i].name)) {
                expand(b, pick(r, SLOTS[i].alts, SLOTS[i].n), depth + 1);
                return;
            }
        abort(); /* a template names a slot that does not exist: a bug in the tables (the tests expand them all) */
    }
#undef IS
}

static void expand(buf_t *b, const char *t, int depth) {
    if (depth > 4) abort(); /* the tables nest at most twice */
    while (*t) {
        while (*t == ' ') t++;
        if (!*t) break;
        if (*t == '{') {
            const char *e = strchr(t, '}');
            slot(b, t + 1, (size_t)(e - t - 1), depth);
            t = e + 1;
        } else {
            char w[64];
            size_t k = 0;
            while (t[k] && t[k] != ' ' && t[k] != '{' && k < sizeof w - 1) w[k] = t[k], k++;
            w[k] = 0;
            word(b, w);
            t += k;
        }
    }
}

acms_kind acms_sentence(uint64_t seed, uint64_t stream, uint64_t index, char out[ACMS_MAX_TEXT]) {
    acms_rng r;
    acms_rng_seed(&r, seed, stream, index);
    int total = 0;
    for (int k = 0; k < N(KINDS); k++) total += KINDS[k].weight;
    int x = (int)acms_rng_below(&r, (uint32_t)total), k = 0;
    while (x >= KINDS[k].weight) x -= KINDS[k].weight, k++;
    buf_t b = {out, 0, ACMS_MAX_TEXT, &r};
    out[0] = 0;
    expand(&b, pick(&r, KINDS[k].t, KINDS[k].n), 0);
    /* a short sentence is sometimes followed by a second one of any kind: assistant requests come in pairs */
    if ((b.n < 40 && acms_rng_below(&r, 2) == 0) || (b.n < 70 && acms_rng_below(&r, 5) == 0)) {
        int k2 = (int)acms_rng_below(&r, (uint32_t)N(KINDS));
        word(&b, "and");
        expand(&b, pick(&r, KINDS[k2].t, KINDS[k2].n), 0);
    }
    return KINDS[k].kind;
}

acms_pool acms_pool_of(const char *text) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) h = (h ^ *p) * 0x100000001b3ULL;
    uint32_t bucket = (uint32_t)(mix(h) % 100);
    return bucket < 6 ? ACMS_POOL_TEST : bucket < 10 ? ACMS_POOL_VAL : ACMS_POOL_TRAIN;
}

int acms_sentence_for_pool(uint64_t seed, uint64_t stream, uint64_t index, acms_pool pool, char out[ACMS_MAX_TEXT]) {
    for (uint64_t a = 0; a < 4096; a++) {
        acms_kind k = acms_sentence(seed, stream, index << 12 | a, out);
        if (acms_pool_of(out) == pool) return (int)k;
    }
    out[0] = 0;
    return -1;
}

/* ---- vocabulary -------------------------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Words of one table entry (split on spaces, slots skipped) -> interned pointers. Words live in a static pool. */
static char vocab_pool[16384];
static size_t vocab_used;

static size_t add_words(const char *s, const char **w, size_t n, size_t max) {
    while (*s) {
        while (*s == ' ') s++;
        if (!*s) break;
        if (*s == '{') {
            s = strchr(s, '}') + 1;
            continue;
        }
        size_t k = 0;
        while (s[k] && s[k] != ' ' && s[k] != '{') k++;
        if (k && vocab_used + k + 1 <= sizeof vocab_pool) {
            char *p = vocab_pool + vocab_used;
            memcpy(p, s, k);
            p[k] = 0;
            vocab_used += k + 1;
            if (n < max) w[n] = p;
            n++;
        }
        s += k;
    }
    return n;
}

size_t acms_vocabulary(const char **words, size_t max) {
    /* collected into a scratch list, then sorted and made unique */
    enum { CAP = 4096 };
    static const char *all[CAP];
    size_t n = 0;
    vocab_used = 0;
#define ADD(a)                                                                                                       \
    for (int i = 0; i < N(a); i++) n = add_words(a[i], all, n, CAP)
    ADD(ONES);
    ADD(TENS);
    ADD(ORD);
    ADD(MONTHS);
    ADD(LETTERS);
    ADD(NATO);
    ADD(GENWORDS);
    for (size_t s = 0; s < sizeof SLOTS / sizeof SLOTS[0]; s++)
        for (int i = 0; i < SLOTS[s].n; i++) n = add_words(SLOTS[s].alts[i], all, n, CAP);
    for (int k = 0; k < N(KINDS); k++)
        for (int i = 0; i < KINDS[k].n; i++) n = add_words(KINDS[k].t[i], all, n, CAP);
#undef ADD
    if (n > CAP) n = CAP;
    qsort(all, n, sizeof all[0], cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (!u || strcmp(all[u - 1], all[i])) all[u++] = all[i];
    for (size_t i = 0; i < u && i < max; i++) words[i] = all[i];
    return u;
}
