/*
 * test_coordinate.c -- runs examples/coordinate (the seed's demo67.go in C)
 * and checks its output line by line:
 *
 *   section 1 "[with sync.WaitGroup]" and section 2 "[with context.Context]":
 *     12 lines "The number: N [id-attempt]", N = 1..12 each exactly once,
 *     every id 1..12 exactly once, "End." last; in section 1, batches of 3
 *     (ids 1-3 get numbers 1-3, ids 4-6 get 4-6, ...) because each batch is
 *     waited for before the next starts;
 *   section 3 "[with ctx_group, deadline D ms]": K success lines (numbers
 *     1..K once each, distinct ids), then the summary line whose counts
 *     agree (K finished, 12 - K cancelled) and name the context error, then
 *     "End.".
 *
 * Also runs examples/cancel_styles, which exits 0 only when all three
 * cancellation styles stopped with the deadline's error.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define TOTAL 12
#define MAX_LINES 256

struct output {
    char *line[MAX_LINES];
    int n;
    int status;
};

static void run(const char *cmd, struct output *out)
{
    memset(out, 0, sizeof(*out));
    fflush(stdout);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char buf[512];
    while (fgets(buf, sizeof buf, f) != NULL) {
        assert_true(out->n < MAX_LINES);
        buf[strcspn(buf, "\n")] = '\0';
        out->line[out->n] = strdup(buf);
        assert_non_null(out->line[out->n]);
        out->n++;
    }
    out->status = pclose(f);
}

static void free_output(struct output *out)
{
    for (int i = 0; i < out->n; i++)
        free(out->line[i]);
}

/* Parses the success lines from *pos up to "End." or a non-matching line;
 * fills num_of_id[id] and returns the count.  Checks numbers 1..count once
 * each and ids distinct. */
static int parse_successes(struct output *out, int *pos, int num_of_id[])
{
    int seen_num[TOTAL + 1] = {0};
    int count = 0;
    for (int id = 0; id <= TOTAL; id++)
        num_of_id[id] = 0;
    while (*pos < out->n) {
        int num, id, attempt;
        char tail;
        if (sscanf(out->line[*pos], "The number: %d [%d-%d%c", &num, &id,
                   &attempt, &tail) != 4 || tail != ']')
            break;
        assert_in_range(num, 1, TOTAL);
        assert_in_range(id, 1, TOTAL);
        assert_true(attempt >= 0);
        if (seen_num[num]++ != 0)
            fail_msg("number %d printed twice", num);
        if (num_of_id[id] != 0)
            fail_msg("id %d succeeded twice", id);
        num_of_id[id] = num;
        count++;
        (*pos)++;
    }
    for (int n = 1; n <= count; n++)
        if (seen_num[n] != 1)
            fail_msg("number %d missing among %d successes", n, count);
    return count;
}

static void expect_line(struct output *out, int *pos, const char *want)
{
    if (*pos >= out->n)
        fail_msg("output ended; expected \"%s\"", want);
    assert_string_equal(out->line[*pos], want);
    (*pos)++;
}

static void check_full_section(struct output *out, int *pos,
                               const char *header, bool batches)
{
    int num_of_id[TOTAL + 1];
    expect_line(out, pos, header);
    assert_int_equal(parse_successes(out, pos, num_of_id), TOTAL);
    for (int id = 1; id <= TOTAL; id++) {
        assert_int_not_equal(num_of_id[id], 0); /* every id exactly once */
        if (batches) /* batch of id == batch of its number */
            assert_int_equal((num_of_id[id] - 1) / 3, (id - 1) / 3);
    }
    expect_line(out, pos, "End.");
}

/* Section 3; returns how many tasks finished. */
static int check_group_section(struct output *out, int *pos)
{
    int num_of_id[TOTAL + 1];
    int dl;
    assert_true(*pos < out->n);
    assert_int_equal(sscanf(out->line[*pos],
                            "The number: 0 [with ctx_group, deadline %d ms]",
                            &dl), 1);
    (*pos)++;
    int k = parse_successes(out, pos, num_of_id);
    assert_true(*pos < out->n);
    int fin, of, cancelled, stopped, never, used = 0;
    assert_int_equal(sscanf(out->line[*pos],
                            "Finished: %d of %d tasks; cancelled: %d (%d "
                            "stopped while running, %d never started): %n",
                            &fin, &of, &cancelled, &stopped, &never, &used),
                     5);
    const char *why = out->line[*pos] + used;
    (*pos)++;
    assert_int_equal(fin, k);
    assert_int_equal(of, TOTAL);
    assert_int_equal(fin + cancelled, TOTAL);
    assert_int_equal(stopped + never, cancelled);
    if (cancelled > 0)
        assert_string_equal(why, "context deadline exceeded");
    else
        assert_string_equal(why, "none");
    expect_line(out, pos, "End.");
    return k;
}

static void test_coordinate_seed_output(void **state)
{
    struct output out;
    run(COORDINATE_PATH " --sleep-ms 20", &out);
    assert_true(WIFEXITED(out.status));
    assert_int_equal(WEXITSTATUS(out.status), 0);
    int pos = 0;
    check_full_section(&out, &pos, "The number: 0 [with sync.WaitGroup]",
                       true);
    check_full_section(&out, &pos, "The number: 0 [with context.Context]",
                       false);
    int k = check_group_section(&out, &pos);
    /* Number n needs a chain of n load-sleep-CAS steps, so it cannot be
     * reached before n * 20 ms: with the 100 ms deadline at most 5 finish,
     * whatever the machine's load. */
    assert_true(k <= 5);
    assert_int_equal(pos, out.n); /* "End." is the last line */
    free_output(&out);
}

static void test_coordinate_generous_deadline(void **state)
{
    struct output out;
    run(COORDINATE_PATH " --sleep-ms 5 --deadline-ms 600000", &out);
    assert_int_equal(WEXITSTATUS(out.status), 0);
    int pos = 0;
    check_full_section(&out, &pos, "The number: 0 [with sync.WaitGroup]",
                       true);
    check_full_section(&out, &pos, "The number: 0 [with context.Context]",
                       false);
    assert_int_equal(check_group_section(&out, &pos), TOTAL);
    assert_int_equal(pos, out.n);
    free_output(&out);
}

static void test_coordinate_bad_usage(void **state)
{
    struct output out;
    run(COORDINATE_PATH " --sleep-ms nope 2>/dev/null", &out);
    assert_true(WIFEXITED(out.status));
    assert_int_equal(WEXITSTATUS(out.status), 2);
    assert_int_equal(out.n, 0);
    free_output(&out);
}

static void test_cancel_styles(void **state)
{
    struct output out;
    run(CANCEL_STYLES_PATH " 50", &out);
    assert_true(WIFEXITED(out.status));
    assert_int_equal(WEXITSTATUS(out.status), 0);
    assert_int_equal(out.n, 4);
    int found = 0;
    for (int i = 0; i < out.n; i++) {
        assert_non_null(strstr(out.line[i], "context deadline exceeded"));
        found += strncmp(out.line[i], "crunch:", 7) == 0;
        found += strncmp(out.line[i], "backoff:", 8) == 0;
        found += strncmp(out.line[i], "event_loop:", 11) == 0;
    }
    assert_int_equal(found, 3);
    assert_string_equal(out.line[3], "group:      context deadline exceeded");
    free_output(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coordinate_seed_output),
        cmocka_unit_test(test_coordinate_generous_deadline),
        cmocka_unit_test(test_coordinate_bad_usage),
        cmocka_unit_test(test_cancel_styles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
