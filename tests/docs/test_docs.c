/*
 * test_docs.c — what the repository says about itself holds for someone with nothing but a clone:
 *   - no tracked file points to developer notes outside the repository (the method notes and style guide the project
 *     started from, or the folder they live in): docs/METHOD.md and docs/DESIGN.md are the references;
 *   - every "METHOD.md §N" and "DESIGN.md §N" (ranges "§N-M" too) names a section that exists.
 * The tracked files come from `git ls-files`; outside a git checkout, every file under the root except build/.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/harness.h"

#define MAX_FILES 8192

typedef struct {
    char *path[MAX_FILES];
    int n;
} file_list;

static void walk(file_list *l, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) && l->n < MAX_FILES;) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || e->d_name[1] == '.' || !strcmp(e->d_name, ".git"))) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s%s%s", dir, strcmp(dir, ".") ? "/" : "", e->d_name);
        if (!strcmp(dir, ".") && !strcmp(e->d_name, "build")) continue;
        struct stat st;
        if (stat(p, &st)) continue;
        if (S_ISDIR(st.st_mode)) walk(l, p);
        else if (S_ISREG(st.st_mode)) l->path[l->n++] = strdup(p);
    }
    closedir(d);
}

static void tracked(file_list *l) {
    l->n = 0;
    FILE *p = popen("git ls-files -z 2>/dev/null", "r");
    if (p) {
        char name[4096];
        size_t k = 0;
        for (int c; (c = fgetc(p)) != EOF;) {
            if (k < sizeof name - 1) name[k++] = (char)c;
            if (c == 0) {
                if (l->n < MAX_FILES) l->path[l->n++] = strdup(name);
                k = 0;
            }
        }
        if (pclose(p) != 0) { /* not a git checkout */
            for (int i = 0; i < l->n; i++) free(l->path[i]);
            l->n = 0;
        }
    }
    if (l->n == 0) walk(l, ".");
    cr_assert_gt(l->n, 10, "no files found");
}

/* The file's text, or NULL for a binary file (a NUL byte) or one that cannot be read. */
static char *text_of(const char *path) {
    size_t n;
    char *b = th_slurp(path, &n);
    if (b && memchr(b, 0, n)) {
        free(b);
        return NULL;
    }
    return b;
}

Test(docs, no_file_points_outside_the_repository) {
    /* spelled in pieces so that this file does not match itself */
    const char *forbidden[] = {"ACM-" "METHOD.md", "STYLE" ".md", "../" "shared", "/work/" "shared"};
    file_list l;
    tracked(&l);
    int bad = 0;
    for (int i = 0; i < l.n; i++) {
        char *t = text_of(l.path[i]);
        for (size_t k = 0; t && k < sizeof forbidden / sizeof forbidden[0]; k++) {
            const char *hit = strstr(t, forbidden[k]);
            if (!hit) continue;
            int line = 1;
            for (const char *c = t; c < hit; c++) line += *c == '\n';
            cr_expect(0, "%s:%d mentions %s, which users of the repository do not have (docs/METHOD.md, docs/DESIGN.md)",
                      l.path[i], line, forbidden[k]);
            bad++;
        }
        free(t);
        free(l.path[i]);
    }
    cr_log_info("%d files checked, %d references outside the repository", l.n, bad);
}

/* The section numbers "## N." of a markdown page, as a bit set. */
static unsigned sections(const char *page) {
    char *t = text_of(page);
    cr_assert(t, "cannot read %s", page);
    unsigned set = 0;
    for (const char *l = t; l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        int n;
        if (sscanf(l, "## %d.", &n) == 1 && n > 0 && n < 32) set |= 1u << n;
    }
    free(t);
    return set;
}

Test(docs, section_references_name_existing_sections) {
    const char *pages[][2] = {{"METHOD.md", "docs/METHOD.md"}, {"DESIGN.md", "docs/DESIGN.md"}};
    unsigned have[2];
    for (int p = 0; p < 2; p++) {
        have[p] = sections(pages[p][1]);
        cr_assert(have[p], "%s has no numbered sections", pages[p][1]);
    }
    regex_t re;
    /* "§N", "§N-M", "§N–M" (en dash), "§§N, M" are not used; one number or one range */
    cr_assert_eq(regcomp(&re, "(METHOD|DESIGN)\\.md §([0-9]+)((-|–)([0-9]+))?", REG_EXTENDED), 0);
    file_list l;
    tracked(&l);
    int refs = 0;
    for (int i = 0; i < l.n; i++) {
        char *t = text_of(l.path[i]);
        for (const char *c = t; c && *c;) {
            regmatch_t m[6];
            if (regexec(&re, c, 6, m, 0)) break;
            const int p = c[m[1].rm_so] == 'M' ? 0 : 1;
            const int lo = atoi(c + m[2].rm_so), hi = m[5].rm_so >= 0 ? atoi(c + m[5].rm_so) : lo;
            for (int s = lo; s <= hi; s++)
                cr_expect(s > 0 && s < 32 && (have[p] >> s & 1), "%s: \"%.*s\": %s has no section %d", l.path[i],
                          (int)(m[0].rm_eo - m[0].rm_so), c + m[0].rm_so, pages[p][1], s);
            refs++;
            c += m[0].rm_eo;
        }
        free(t);
        free(l.path[i]);
    }
    regfree(&re);
    cr_expect_gt(refs, 0, "no section reference found (is the pattern right?)");
    cr_log_info("%d section references checked", refs);
}
