// SPDX-License-Identifier: GPL-2.0
/*
 * ftrace_regs_bench - measure the per-call cost of an ftrace_ops callback
 * with and without FTRACE_OPS_FL_SAVE_REGS.
 *
 * On arm64 5.5 - 6.1 (CONFIG_DYNAMIC_FTRACE_WITH_REGS) a traced function
 * calls ftrace_regs_caller when any ops attached to it asks for
 * FTRACE_OPS_FL_SAVE_REGS, and ftrace_caller otherwise.  Nothing reachable
 * from user space selects the regs caller there, so this module registers
 * the ops itself and times a module-local function in a tight loop.
 *
 * Interface (debugfs, <debugfs>/ftrace_regs_bench/, see README.md):
 *   attach  rw  "FUNC 0|1" attaches one counting ops to FUNC, "none" detaches
 *   run     rw  "calls=N save_regs=0|1 relevant=R irrelevant=I" runs a timing
 *   hold    rw  "save_regs=0|1 relevant=R irrelevant=I" keeps those ops
 *               registered across runs (so that tracefs can show them),
 *               "none" releases them
 *   info    ro  kernel and ftrace configuration of this build
 *
 * Every ops lives in module memory, so __register_ftrace_function() marks it
 * FTRACE_OPS_FL_DYNAMIC and the arch caller always goes through
 * ftrace_ops_list_func(): with and without SAVE_REGS the callback is reached
 * the same way and only the register save in the caller differs.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ctype.h>
#include <linux/debugfs.h>
#include <linux/ftrace.h>
#include <linux/kallsyms.h>
#include <linux/kernel.h>
#include <linux/minmax.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <linux/utsname.h>
#include <linux/version.h>
#include <generated/utsrelease.h>

#define FRB_VERSION	"1.1"

#define FRB_MAX_CALLS	1000000000ULL
#define FRB_MAX_OPS	16
/* Calls per timed chunk; between chunks we may reschedule or bail out. */
#define FRB_CHUNK	65536ULL
/* Longest command we accept: a symbol name plus a few short fields. */
#define FRB_CMD_MAX	(KSYM_NAME_LEN + 64)

/*
 * Test builds only (make FRB_TEST_DROP_SAVE_REGS=1): every ops is registered
 * without FTRACE_OPS_FL_SAVE_REGS, whatever the command asked for, while the
 * module still reports save_regs=1.  This is the module lying about its regs
 * path, so that a test can check that the controller's tracefs proof (the R
 * flag in enabled_functions) refuses such a cell.  "info" says test=...
 * so that a bundle measured with it can never pass for a real one.
 */
#ifdef FRB_TEST_DROP_SAVE_REGS
#define FRB_TEST	"drop_save_regs"
#define FRB_OPS_FLAGS(save_regs)	((void)(save_regs), FRB_OPS_BASE_FLAGS)
#else
#define FRB_TEST	"none"
#define FRB_OPS_FLAGS(save_regs)	\
	(((save_regs) ? FTRACE_OPS_FL_SAVE_REGS : 0UL) | FRB_OPS_BASE_FLAGS)
#endif

/*
 * Kernels before 5.11 (5.10 is the oldest long-term kernel with arm64's
 * regs caller that distributions still ship: Debian 11).  5.11 changed two
 * things in one series, and the two spellings below mean the same thing:
 *  - the callback's last argument became struct ftrace_regs * (it was
 *    struct pt_regs *); the callbacks here never look at it;
 *  - the recursion flag was inverted: FTRACE_OPS_FL_RECURSION_SAFE ("the
 *    callback protects itself") became the default, and ops that want
 *    ftrace's protection set FTRACE_OPS_FL_RECURSION.  Not setting
 *    RECURSION from 5.11 on is setting RECURSION_SAFE before it: either way
 *    ftrace_ops_get_func() hands out the callback itself, never
 *    ftrace_ops_assist_func (see the callbacks' comment).
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 11, 0)
#define FRB_CB_REGS		struct pt_regs
#define FRB_OPS_BASE_FLAGS	FTRACE_OPS_FL_RECURSION_SAFE
#else
#define FRB_CB_REGS		struct ftrace_regs
#define FRB_OPS_BASE_FLAGS	0UL
#endif

/* Serialises every command and every read of the state below. */
static DEFINE_MUTEX(frb_mutex);

static struct dentry *frb_dir;

/*
 * Hit counters.  Per-cpu so that the callback is a single local increment
 * and never bounces a cache line between CPUs.
 */
static DEFINE_PER_CPU(u64, frb_attach_hits);
static DEFINE_PER_CPU(u64, frb_run_hits);

/* "attach" state: at most one ops, allocated while attached. */
static struct ftrace_ops *frb_attach_ops;
static char frb_attach_func[KSYM_NAME_LEN];
static bool frb_attach_regs;

/* Result of the last completed "run". */
struct frb_result {
	u64 calls;
	u64 total_ns;
	u64 hits;
	unsigned int relevant;
	unsigned int irrelevant;
	bool save_regs;
};

static struct frb_result frb_last;

/*
 * A set of run ops: @relevant ops on frb_tracee, then @irrelevant ops on
 * frb_idle, in one array.  A "run" registers its own set for the timing and
 * unregisters it at once, unless a set is held ("hold"): then the run times
 * the calls with the held set, which stays registered between runs, so that
 * tracefs (enabled_functions) can show the record and its flags before and
 * after a whole series of runs.
 */
struct frb_opset {
	struct ftrace_ops *ops;		/* NULL when the set has no ops */
	unsigned int relevant;
	unsigned int irrelevant;
	bool save_regs;
};

static struct frb_opset frb_held;
static bool frb_holding;

/*
 * Call counters of the two module-local functions.  Each function writes its
 * own variable: a volatile store is a side effect the compiler must keep, so
 * every call survives, and the two bodies differ, so identical code folding
 * (-fipa-icf) cannot merge them into one symbol.
 */
static unsigned long frb_tracee_calls;
static unsigned long frb_idle_calls;

/*
 * The function the relevant ops trace.  noinline keeps it a real call with
 * its own patchable entry (-fpatchable-function-entry=2 on arm64, __fentry__
 * on x86); it is only called under frb_mutex, so the plain read-modify-write
 * does not race.
 */
static noinline void frb_tracee(void)
{
	WRITE_ONCE(frb_tracee_calls, frb_tracee_calls + 1);
}

/*
 * The function the irrelevant ops trace.  It is never called: those ops only
 * lengthen the ops list that ftrace_ops_list_func() walks for every traced
 * call.  Taking its address (for the filter) keeps it emitted.
 */
static noinline void frb_idle(void)
{
	WRITE_ONCE(frb_idle_calls, frb_idle_calls + 1);
}

/*
 * Callbacks: as trivial as a callback can be.  notrace so they cannot be
 * traced themselves.  FTRACE_OPS_FL_RECURSION is deliberately not set: it
 * would route single-ops call sites through ftrace_ops_assist_func, and the
 * callbacks call nothing that could recurse.  this_cpu_inc() is safe even
 * where ftrace does not disable preemption for us.
 */
static void notrace frb_attach_cb(unsigned long ip, unsigned long parent_ip,
				  struct ftrace_ops *op,
				  FRB_CB_REGS *regs)
{
	this_cpu_inc(frb_attach_hits);
}

static void notrace frb_run_cb(unsigned long ip, unsigned long parent_ip,
			       struct ftrace_ops *op, FRB_CB_REGS *regs)
{
	this_cpu_inc(frb_run_hits);
}

static u64 frb_sum(u64 __percpu *ctr)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += READ_ONCE(*per_cpu_ptr(ctr, cpu));
	return sum;
}

static void frb_zero(u64 __percpu *ctr)
{
	int cpu;

	for_each_possible_cpu(cpu)
		per_cpu(*ctr, cpu) = 0;
}

/*
 * Free an ops' filter hash (the ops is not registered, or never was).
 * ftrace_free_filter() is exported since 6.3 (and in 6.1 by a stable
 * backport); 5.10's Module.symvers has no such symbol, so a module calling
 * it fails at modpost there.  Before 6.1 a reset with no pattern does the
 * same for the only hash these ops set (their notrace hash stays the shared
 * empty one): the filter becomes the empty hash and the old one is freed
 * (after an RCU grace period).
 */
static void frb_free_filter(struct ftrace_ops *ops)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0)
	ftrace_free_filter(ops);
#else
	ftrace_set_filter(ops, NULL, 0, 1);
#endif
}

/*
 * The address ftrace_set_filter_ip() takes for @func.  Since 5.18 it takes
 * the function's own address (ftrace_location() finds the record inside
 * the function).  Before, it wants the record's address exactly, the patch
 * site, and answers -EINVAL for anything else: that is what the kernel made
 * of the function's entry with ftrace_call_adjust() when it recorded the
 * module's call sites (on arm64 with DYNAMIC_FTRACE_WITH_REGS, the entry is
 * the first of the two NOPs of -fpatchable-function-entry=2 and the record
 * is the second, entry + 4; with x86's __fentry__, the entry itself).
 */
static unsigned long frb_filter_ip(void (*func)(void))
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 18, 0)
	return (unsigned long)func;
#else
	return ftrace_call_adjust((unsigned long)func);
#endif
}

/*
 * Release an ops that was registered.  Once unregister_ftrace_function()
 * returns, ftrace has synchronised with every CPU that could still be in the
 * callback (it does so for all FTRACE_OPS_FL_DYNAMIC ops), so the memory may
 * be freed.  If unregistering fails, ftrace is already dead (ftrace_disabled)
 * or confused; then the ops must not be freed, and we leak it on purpose.
 * Returns true if the ops may be freed.
 */
static bool frb_unregister(struct ftrace_ops *ops)
{
	int ret = unregister_ftrace_function(ops);

	if (ret) {
		pr_err("unregister_ftrace_function failed (%d), leaking ops\n",
		       ret);
		return false;
	}
	frb_free_filter(ops);
	return true;
}

/* Split off the next whitespace-separated token of *s, or NULL at the end. */
static char *frb_next_token(char **s)
{
	char *tok = skip_spaces(*s);
	char *end = tok;

	if (!*tok)
		return NULL;
	while (*end && !isspace(*end))
		end++;
	if (*end)
		*end++ = '\0';
	*s = end;
	return tok;
}

/* Strict decimal: digits only, no sign, no base prefix. */
static int frb_parse_u64(const char *s, u64 min, u64 max, u64 *val)
{
	const char *p;
	int ret;

	if (!*s)
		return -EINVAL;
	for (p = s; *p; p++)
		if (!isdigit(*p))
			return -EINVAL;
	ret = kstrtou64(s, 10, val);
	if (ret)
		return -EINVAL;
	if (*val < min || *val > max)
		return -EINVAL;
	return 0;
}

/*
 * A plain symbol name.  ftrace_set_filter() takes a glob ("*", "?", "[...]"),
 * "!" negation, ":mod:" syntax and, for an all-digit string, an index into
 * available_filter_functions; accepting only identifier characters (and the
 * '.' of suffixes like ".isra.0") makes it match by exact name only.
 */
static bool frb_valid_symbol(const char *s)
{
	size_t len = strlen(s);
	const char *p;

	if (!len || len >= KSYM_NAME_LEN || isdigit(*s))
		return false;
	for (p = s; *p; p++)
		if (!isalnum(*p) && *p != '_' && *p != '.')
			return false;
	return true;
}

/*
 * Copy one command from user space into a NUL-terminated kernel buffer.
 * One write() is one command; anything longer than FRB_CMD_MAX is invalid.
 */
static char *frb_get_cmd(const char __user *ubuf, size_t count)
{
	if (!count || count > FRB_CMD_MAX)
		return ERR_PTR(-EINVAL);
	return memdup_user_nul(ubuf, count);
}

/* ---- attach ---------------------------------------------------------- */

static void frb_detach(void)
{
	lockdep_assert_held(&frb_mutex);

	if (!frb_attach_ops)
		return;
	if (frb_unregister(frb_attach_ops))
		kfree(frb_attach_ops);
	frb_attach_ops = NULL;
	frb_attach_func[0] = '\0';
	frb_attach_regs = false;
}

static int frb_attach(char *func, bool save_regs)
{
	struct ftrace_ops *ops;
	int ret;

	lockdep_assert_held(&frb_mutex);

	/* Like a run, a held set must not share its ops list with us. */
	if (frb_attach_ops || frb_holding)
		return -EBUSY;

	ops = kzalloc(sizeof(*ops), GFP_KERNEL);
	if (!ops)
		return -ENOMEM;
	ops->func = frb_attach_cb;
	ops->flags = FRB_OPS_FLAGS(save_regs);

	/*
	 * The filter must be in place before registering: an ops with an
	 * empty filter hash traces every function in the kernel.  -EINVAL
	 * here means no record of available_filter_functions has that name.
	 */
	ret = ftrace_set_filter(ops, (unsigned char *)func, strlen(func), 1);
	if (ret)
		goto free_filter;

	frb_zero(&frb_attach_hits);
	/*
	 * On a failure __register_ftrace_function() has not added the ops to
	 * the ops list (a SAVE_REGS ops without a regs caller is refused with
	 * -EINVAL before that), so it can be freed at once.
	 */
	ret = register_ftrace_function(ops);
	if (ret)
		goto free_filter;

	strscpy(frb_attach_func, func, sizeof(frb_attach_func));
	frb_attach_regs = save_regs;
	frb_attach_ops = ops;
	return 0;

free_filter:
	frb_free_filter(ops);
	kfree(ops);
	return ret;
}

static ssize_t frb_attach_write(struct file *file, const char __user *ubuf,
				size_t count, loff_t *ppos)
{
	char *buf, *cur, *func, *regs, *extra;
	bool save_regs;
	int ret;

	buf = frb_get_cmd(ubuf, count);
	if (IS_ERR(buf))
		return PTR_ERR(buf);

	cur = buf;
	func = frb_next_token(&cur);
	regs = frb_next_token(&cur);
	extra = frb_next_token(&cur);

	ret = -EINVAL;
	if (!func || extra)
		goto out_free;

	if (!strcmp(func, "none")) {
		if (regs)
			goto out_free;
		ret = mutex_lock_interruptible(&frb_mutex);
		if (ret)
			goto out_free;
		frb_detach();
		mutex_unlock(&frb_mutex);
		goto out_free;
	}

	if (!regs || !frb_valid_symbol(func))
		goto out_free;
	if (!strcmp(regs, "1"))
		save_regs = true;
	else if (!strcmp(regs, "0"))
		save_regs = false;
	else
		goto out_free;

	ret = mutex_lock_interruptible(&frb_mutex);
	if (ret)
		goto out_free;
	ret = frb_attach(func, save_regs);
	mutex_unlock(&frb_mutex);

out_free:
	kfree(buf);
	return ret ? ret : count;
}

static int frb_attach_show(struct seq_file *m, void *v)
{
	int ret = mutex_lock_interruptible(&frb_mutex);

	if (ret)
		return ret;
	if (frb_attach_ops)
		seq_printf(m, "function=%s save_regs=%d hits=%llu\n",
			   frb_attach_func, frb_attach_regs,
			   frb_sum(&frb_attach_hits));
	else
		seq_puts(m, "function=none\n");
	mutex_unlock(&frb_mutex);
	return 0;
}

static int frb_attach_open(struct inode *inode, struct file *file)
{
	return single_open(file, frb_attach_show, NULL);
}

static const struct file_operations frb_attach_fops = {
	.owner		= THIS_MODULE,
	.open		= frb_attach_open,
	.read		= seq_read,
	.write		= frb_attach_write,
	.llseek		= seq_lseek,
	.release	= single_release,
};

/* ---- run ------------------------------------------------------------- */

/*
 * Register @n ops tracing @func into @ops[0..n-1].  On failure every ops this
 * call registered is unregistered again.  Returns 0 or the kernel's error;
 * *@leaked is set if an ops could not be unregistered (see frb_unregister).
 */
static int frb_register_n(struct ftrace_ops *ops, unsigned int n,
			  void (*func)(void), bool save_regs, bool *leaked)
{
	unsigned int i;
	int ret;

	for (i = 0; i < n; i++) {
		ops[i].func = frb_run_cb;
		ops[i].flags = FRB_OPS_FLAGS(save_regs);

		/* By address: exact, whatever the symbol is called. */
		ret = ftrace_set_filter_ip(&ops[i], frb_filter_ip(func), 0, 1);
		if (!ret)
			ret = register_ftrace_function(&ops[i]);
		if (ret) {
			frb_free_filter(&ops[i]);
			goto unwind;
		}
	}
	return 0;

unwind:
	while (i--)
		if (!frb_unregister(&ops[i]))
			*leaked = true;
	return ret;
}

static void frb_unregister_n(struct ftrace_ops *ops, unsigned int n,
			     bool *leaked)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (!frb_unregister(&ops[i]))
			*leaked = true;
}

/*
 * Call the tracee @calls times.  The loop runs in chunks of FRB_CHUNK calls;
 * only the chunks are timed.  Between chunks we give the CPU away if needed
 * (Debian's kernels use voluntary preemption, so a long loop could
 * otherwise trigger soft-lockup warnings) and stop on a pending signal.
 * Preemption stays enabled inside a chunk: on a preemptible kernel, or when
 * an interrupt arrives, that time is included.
 */
static int frb_time_calls(u64 calls, u64 *total_ns)
{
	u64 done = 0, total = 0;

	while (done < calls) {
		u64 chunk = min(calls - done, FRB_CHUNK);
		u64 i, t0;

		t0 = ktime_get_ns();
		for (i = 0; i < chunk; i++)
			frb_tracee();
		total += ktime_get_ns() - t0;
		done += chunk;

		if (signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	*total_ns = total;
	return 0;
}

/*
 * Allocate and register @set's ops: irrelevant ones first, because
 * add_ftrace_ops() inserts at the head of the list, so that the relevant ops
 * end up ahead of them.  The list function still tests every ops against the
 * traced ip on each call.  On failure nothing stays registered (unless
 * leaked, see frb_unregister) and @set->ops is NULL.
 */
static int frb_opset_register(struct frb_opset *set)
{
	unsigned int nr = set->relevant + set->irrelevant;
	bool leaked = false;
	int ret;

	set->ops = NULL;
	if (!nr)
		return 0;
	set->ops = kcalloc(nr, sizeof(*set->ops), GFP_KERNEL);
	if (!set->ops)
		return -ENOMEM;

	ret = frb_register_n(set->ops + set->relevant, set->irrelevant,
			     frb_idle, set->save_regs, &leaked);
	if (!ret) {
		ret = frb_register_n(set->ops, set->relevant,
				     frb_tracee, set->save_regs,
				     &leaked);
		if (ret)
			frb_unregister_n(set->ops + set->relevant,
					 set->irrelevant, &leaked);
	}
	if (!ret)
		return 0;
	if (leaked)
		WARN(1, KBUILD_MODNAME ": ops still registered, not freed\n");
	else
		kfree(set->ops);
	set->ops = NULL;
	return ret;
}

/* Unregister and free @set's ops (leaked, not freed, if ftrace refuses). */
static void frb_opset_release(struct frb_opset *set)
{
	bool leaked = false;

	if (!set->ops)
		return;
	frb_unregister_n(set->ops, set->relevant + set->irrelevant, &leaked);
	if (leaked)
		WARN(1, KBUILD_MODNAME ": ops still registered, not freed\n");
	else
		kfree(set->ops);
	set->ops = NULL;
}

static int frb_run(u64 calls, bool save_regs, unsigned int relevant,
		   unsigned int irrelevant)
{
	struct frb_result res = {
		.calls = calls, .save_regs = save_regs,
		.relevant = relevant, .irrelevant = irrelevant,
	};
	struct frb_opset own = {
		.relevant = relevant, .irrelevant = irrelevant,
		.save_regs = save_regs,
	};
	unsigned long tracee_before;
	int ret;

	lockdep_assert_held(&frb_mutex);

	/*
	 * An attached ops would sit in the same ops list and add one filter
	 * test per traced call: refuse rather than measure it silently.
	 */
	if (frb_attach_ops)
		return -EBUSY;

	/*
	 * While a set is held, a run times exactly that set: other settings
	 * would either add ops to the held ones or claim ops that are not
	 * there.
	 */
	if (frb_holding) {
		if (frb_held.relevant != relevant ||
		    frb_held.irrelevant != irrelevant ||
		    frb_held.save_regs != save_regs)
			return -EBUSY;
	} else {
		ret = frb_opset_register(&own);
		if (ret)
			return ret;
	}

	/* Only the loop below calls frb_tracee, under frb_mutex. */
	frb_zero(&frb_run_hits);
	tracee_before = frb_tracee_calls;
	ret = frb_time_calls(calls, &res.total_ns);

	if (!frb_holding)
		frb_opset_release(&own);
	if (ret)
		return ret;

	/*
	 * Built-in check: every call reached the tracee, every relevant ops
	 * saw every call, and no irrelevant ops fired.  On a mismatch the
	 * result is still recorded so that it can be read, but the write
	 * fails with -EIO.
	 */
	res.hits = frb_sum(&frb_run_hits);
	frb_last = res;
	if (frb_tracee_calls - tracee_before != calls ||
	    res.hits != calls * relevant) {
		pr_warn("check failed: calls=%llu tracee=%lu hits=%llu expected=%llu\n",
			calls, frb_tracee_calls - tracee_before, res.hits,
			calls * relevant);
		ret = -EIO;
	}
	return ret;
}

/*
 * The keys of a "run" command, each required exactly once; a "hold" command
 * takes the same keys but calls.
 */
enum { FRB_CALLS, FRB_SAVE_REGS, FRB_RELEVANT, FRB_IRRELEVANT, FRB_NR_KEYS };

#define FRB_RUN_KEYS	(BIT(FRB_NR_KEYS) - 1)
#define FRB_HOLD_KEYS	(FRB_RUN_KEYS & ~BIT(FRB_CALLS))

static const struct {
	const char *key;
	u64 min, max;
} frb_run_keys[FRB_NR_KEYS] = {
	[FRB_CALLS]	 = { "calls",	   1, FRB_MAX_CALLS },
	[FRB_SAVE_REGS]	 = { "save_regs",  0, 1 },
	[FRB_RELEVANT]	 = { "relevant",   0, FRB_MAX_OPS },
	[FRB_IRRELEVANT] = { "irrelevant", 0, FRB_MAX_OPS },
};

/*
 * key=value tokens of @buf, in any order, no unknown or repeated keys; the
 * keys present must be exactly those in the bit mask @want.
 */
static int frb_parse_keys(char *buf, unsigned int want, u64 *val)
{
	unsigned int seen = 0;
	char *cur = buf, *tok;

	while ((tok = frb_next_token(&cur))) {
		char *v = strchr(tok, '=');
		unsigned int k;

		if (!v)
			return -EINVAL;
		*v++ = '\0';
		for (k = 0; k < FRB_NR_KEYS; k++)
			if (!strcmp(tok, frb_run_keys[k].key))
				break;
		if (k == FRB_NR_KEYS || !(want & BIT(k)) || (seen & BIT(k)))
			return -EINVAL;
		seen |= BIT(k);
		if (frb_parse_u64(v, frb_run_keys[k].min, frb_run_keys[k].max,
				  &val[k]))
			return -EINVAL;
	}
	return seen == want ? 0 : -EINVAL;
}

static ssize_t frb_run_write(struct file *file, const char __user *ubuf,
			     size_t count, loff_t *ppos)
{
	u64 val[FRB_NR_KEYS];
	char *buf;
	int ret;

	buf = frb_get_cmd(ubuf, count);
	if (IS_ERR(buf))
		return PTR_ERR(buf);

	ret = frb_parse_keys(buf, FRB_RUN_KEYS, val);
	if (ret)
		goto out_free;

	ret = mutex_lock_interruptible(&frb_mutex);
	if (ret)
		goto out_free;
	ret = frb_run(val[FRB_CALLS], val[FRB_SAVE_REGS], val[FRB_RELEVANT],
		      val[FRB_IRRELEVANT]);
	mutex_unlock(&frb_mutex);

out_free:
	kfree(buf);
	return ret ? ret : count;
}

static int frb_run_show(struct seq_file *m, void *v)
{
	int ret = mutex_lock_interruptible(&frb_mutex);

	if (ret)
		return ret;
	seq_printf(m, "calls=%llu save_regs=%d relevant=%u irrelevant=%u total_ns=%llu hits=%llu\n",
		   frb_last.calls, frb_last.save_regs, frb_last.relevant,
		   frb_last.irrelevant, frb_last.total_ns, frb_last.hits);
	mutex_unlock(&frb_mutex);
	return 0;
}

static int frb_run_open(struct inode *inode, struct file *file)
{
	return single_open(file, frb_run_show, NULL);
}

static const struct file_operations frb_run_fops = {
	.owner		= THIS_MODULE,
	.open		= frb_run_open,
	.read		= seq_read,
	.write		= frb_run_write,
	.llseek		= seq_lseek,
	.release	= single_release,
};

/* ---- hold ------------------------------------------------------------ */

static void frb_release(void)
{
	lockdep_assert_held(&frb_mutex);

	if (!frb_holding)
		return;
	frb_opset_release(&frb_held);
	frb_holding = false;
}

static int frb_hold(bool save_regs, unsigned int relevant,
		    unsigned int irrelevant)
{
	struct frb_opset set = {
		.relevant = relevant, .irrelevant = irrelevant,
		.save_regs = save_regs,
	};
	int ret;

	lockdep_assert_held(&frb_mutex);

	/* One held set at a time, and never beside the attach ops. */
	if (frb_holding || frb_attach_ops)
		return -EBUSY;
	ret = frb_opset_register(&set);
	if (ret)
		return ret;
	frb_held = set;
	frb_holding = true;
	return 0;
}

static ssize_t frb_hold_write(struct file *file, const char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	u64 val[FRB_NR_KEYS];
	char *buf, *cmd;
	int ret;

	buf = frb_get_cmd(ubuf, count);
	if (IS_ERR(buf))
		return PTR_ERR(buf);

	/* strim() drops the blanks around the command ("echo none" works). */
	cmd = strim(buf);
	if (!strcmp(cmd, "none")) {
		ret = mutex_lock_interruptible(&frb_mutex);
		if (ret)
			goto out_free;
		frb_release();
		mutex_unlock(&frb_mutex);
		goto out_free;
	}

	ret = frb_parse_keys(cmd, FRB_HOLD_KEYS, val);
	if (ret)
		goto out_free;

	ret = mutex_lock_interruptible(&frb_mutex);
	if (ret)
		goto out_free;
	ret = frb_hold(val[FRB_SAVE_REGS], val[FRB_RELEVANT],
		       val[FRB_IRRELEVANT]);
	mutex_unlock(&frb_mutex);

out_free:
	kfree(buf);
	return ret ? ret : count;
}

static int frb_hold_show(struct seq_file *m, void *v)
{
	int ret = mutex_lock_interruptible(&frb_mutex);

	if (ret)
		return ret;
	if (frb_holding)
		seq_printf(m, "save_regs=%d relevant=%u irrelevant=%u\n",
			   frb_held.save_regs, frb_held.relevant,
			   frb_held.irrelevant);
	else
		seq_puts(m, "none\n");
	mutex_unlock(&frb_mutex);
	return 0;
}

static int frb_hold_open(struct inode *inode, struct file *file)
{
	return single_open(file, frb_hold_show, NULL);
}

static const struct file_operations frb_hold_fops = {
	.owner		= THIS_MODULE,
	.open		= frb_hold_open,
	.read		= seq_read,
	.write		= frb_hold_write,
	.llseek		= seq_lseek,
	.release	= single_release,
};

/* ---- info ------------------------------------------------------------ */

static int frb_info_show(struct seq_file *m, void *v)
{
	seq_printf(m, "kernel=%s regs_caller=%d args=%d call_ops=%d arch=%s version=%s test=%s\n",
		   UTS_RELEASE,
		   IS_ENABLED(CONFIG_DYNAMIC_FTRACE_WITH_REGS),
		   IS_ENABLED(CONFIG_DYNAMIC_FTRACE_WITH_ARGS),
		   IS_ENABLED(CONFIG_DYNAMIC_FTRACE_WITH_CALL_OPS),
		   init_utsname()->machine, FRB_VERSION, FRB_TEST);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(frb_info);

/* ---- module ---------------------------------------------------------- */

static int __init frb_init(void)
{
	struct dentry *dir;

	dir = debugfs_create_dir(KBUILD_MODNAME, NULL);
	if (IS_ERR(dir))
		return PTR_ERR(dir);	/* debugfs disabled or locked down */
	frb_dir = dir;

	debugfs_create_file("attach", 0600, dir, NULL, &frb_attach_fops);
	debugfs_create_file("run", 0600, dir, NULL, &frb_run_fops);
	debugfs_create_file("hold", 0600, dir, NULL, &frb_hold_fops);
	debugfs_create_file("info", 0400, dir, NULL, &frb_info_fops);
	return 0;
}

static void __exit frb_exit(void)
{
	/*
	 * Remove the files first: debugfs_remove_recursive() waits for
	 * handlers still running, and no new command can start afterwards.
	 * Open files hold a module reference, so a run cannot be in progress
	 * here anyway.  Then drop the attachment and a held set; runs never
	 * leave ops behind.
	 */
	debugfs_remove_recursive(frb_dir);

	mutex_lock(&frb_mutex);
	frb_detach();
	frb_release();
	mutex_unlock(&frb_mutex);
}

module_init(frb_init);
module_exit(frb_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Per-call cost of ftrace callbacks with and without SAVE_REGS");
MODULE_VERSION(FRB_VERSION);
