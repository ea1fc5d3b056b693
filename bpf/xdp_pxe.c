//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdp_pxe: the boot server's first look at every packet on its provisioning
 * interface. It classifies (PXE, UEFI HTTP boot, iPXE, other DHCP,
 * proxyDHCP, TFTP request, TFTP transfer, other), counts per class and
 * verdict, applies the MAC policy and a per-client token bucket keyed by
 * chaddr, and drops what the boot server does not want before the stack
 * spends anything on it.
 *
 * dataplane/xdp holds a Go classifier with exactly these semantics (the
 * fallback, and the parity test's reference); change both together.
 */
#include "include/bpf_min.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Classes (dataplane/xdp Class). */
enum {
	C_PXE = 0,    /* BOOTREQUEST to the DHCP port, option 60 begins "PXEClient" */
	C_HTTP,       /* ... option 60 begins "HTTPClient" (UEFI HTTP boot) */
	C_IPXE,       /* PXE or HTTP class plus option 77 "iPXE" */
	C_DHCP,       /* any other datagram to the DHCP port */
	C_PROXY,      /* to the proxyDHCP port (4011) */
	C_TFTP,       /* to the TFTP port: a request */
	C_TFTP_DATA,  /* to one of the TFTP engine's transfer ports */
	C_OTHER,      /* everything else, including what does not parse */
	NCLASS,
};

/* Verdicts (dataplane/xdp Verdict); only V_PASS passes. */
enum {
	V_PASS = 0,
	V_DROP_CLASS,     /* the configured action of the class is drop */
	V_DROP_DENY,      /* chaddr is on the deny list */
	V_DROP_UNKNOWN,   /* chaddr is on no list and unknown clients are dropped */
	V_DROP_RATE,      /* the client's token bucket is empty */
	V_DROP_ADMISSION, /* a new client, and new clients are over their limit */
	NVERDICT,
};

/* Policy of clients on neither list. */
enum { U_PASS = 0, U_DROP = 1, U_DISCOVERY = 2 };
/* Values of the policy map. */
enum { P_ALLOW = 1, P_DENY = 2 };

#define NS 1000000000ULL
#define MAX_ELAPSED (1000ULL * NS) /* refill at most 1000 s at once: no overflow with rate <= 1e6 */

#define BOOTP_HDR 236   /* RFC 2131 §2: fixed fields before the magic cookie */
#define OPT_BYTES 312   /* RFC 2131 §2: the options field a client must accept */
#define OPT_MAX 64      /* options walked at most; overload (52) is ignored */


struct config {
	__u8 action[NCLASS]; /* 0 pass, 1 drop */
	__u8 unknown;        /* U_* */
	__u8 _pad0;
	__u16 dhcp_port;     /* host order, like every port here */
	__u16 proxy_port;
	__u16 tftp_port;
	__u16 tftp_lo;       /* transfer port range, inclusive; 0: none */
	__u16 tftp_hi;
	__u32 rate;          /* per client, packets per second; 0: no per-client limit */
	__u32 burst;         /* per client */
	__u32 admit_rate;    /* new clients per second; 0: no admission limit */
	__u32 admit_burst;
	__u32 policy_n;      /* entries in the policy map; 0: skip its lookup */
	__u32 policy_gen;    /* changes with every write of this map, after the policy map's */
	__u32 jiffy_ns;      /* ns per jiffy (1e9 / CONFIG_HZ); 0: not known */
	__u64 clock_ns;      /* 0: the kernel's clock (see now_ns); else the clock (tests) */
};

struct bucket {
	__u64 tokens; /* in 1e-9 packets */
	__u64 last;   /* clock at the last refill, ns */
};

/* A client's entry in the bucket LRU: its token bucket, and its policy
 * as read from the policy map while config.policy_gen was gen, so that a
 * known client costs one hash lookup, not two. */
struct client {
	struct bucket b;
	__u32 gen;
	__u8 pol; /* 0: not in the policy map; else POL_FOUND | its value */
	__u8 _pad[3];
};
#define POL_FOUND 0x80

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct mac_key {
	__u8 mac[6];
	__u16 _pad; /* always 0 */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NCLASS * NVERDICT);
	__type(key, __u32); /* class * NVERDICT + verdict */
	__type(value, struct counter);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* set by the loader */
	__type(key, struct mac_key);
	__type(value, struct client);
} buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bucket);
} admission SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* set by the loader */
	__type(key, struct mac_key);
	__type(value, __u8); /* P_ALLOW or P_DENY */
} policy SEC(".maps");

/* forget_bounds leaves x in [0, 511] as far as the verifier knows (the
 * mask gives the value bits, the OR raises the maximum to what they allow):
 * every round of the option walk then starts with the same range for the
 * offset, whatever the path, so the verifier prunes the paths of one round
 * instead of following each through all 64. x must already be below 512. */
#define forget_bounds(x) asm volatile("%0 &= 0x1ff; %0 |= 0" : "+r"(x))

/* What the option walk found, kept in a map value rather than in
 * registers: the verifier does not track map contents, so the findings do
 * not multiply its states (in registers they made the walk unverifiable). */
struct findings {
	__u32 vc; /* option 60: 0 not seen, 1 PXEClient, 2 HTTPClient, 3 other */
	__u32 uc; /* option 77: 0 not seen, 1 iPXE, 2 other */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct findings);
} scratch SEC(".maps");

/* walk_options classifies by the options that start at offset base of the
 * packet: the first option 60 and the first option 77, at most OPT_MAX
 * options (pads count) within OPT_BYTES, stopping at the end option or at
 * the first option that does not fit. A global function: the verifier
 * checks it once, on its own, not once for every path that leads to it. */
__attribute__((noinline)) int walk_options(struct xdp_md *ctx, __u32 base)
{
	__u32 zero = 0;
	struct findings *s = bpf_map_lookup_elem(&scratch, &zero);
	__u64 b = base;
	asm volatile("%0 &= 0x3ff" : "+r"(b)); /* bounded in the register the pointer math uses */
	if (!s || b > 512)
		return C_DHCP;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *opts = data + b;
	/* off = 0, but not as far as the verifier knows: with a variable
	 * offset from the first option on, no check in the loop narrows opts
	 * itself (which would make the states of all later rounds differ) */
	__u64 off;
	asm volatile("%0 = %1; %0 -= %1" : "=r"(off) : "r"(b));
	forget_bounds(off);
	s->vc = 0;
	s->uc = 0;
	for (__u64 n = 0; n < OPT_MAX; n++) { /* 64 bits: no zero-extension each round */
		if (off >= OPT_BYTES)
			break;
		__u8 *o = opts + off;
		if ((void *)(o + 2) > end) { /* the last byte: only a pad goes on */
			if ((void *)(o + 1) <= end && o[0] == 0) {
				off++;
				forget_bounds(off);
				continue;
			}
			break;
		}
		__u8 code = o[0];
		if (code == 0) { /* pad */
			off++;
			forget_bounds(off);
			continue;
		}
		if (code == 255) /* end */
			break;
		__u64 l = o[1];
		__u64 next = off + 2 + l;
		if (next > OPT_BYTES) /* also when the length byte is beyond OPT_BYTES */
			break;
		__u8 *v = o + 2;
		if ((void *)(v + l) > end)
			break;
		if (code == 60 && !s->vc) {
			s->vc = 3;
			if (l >= 9 && (void *)(v + 9) <= end && v[0] == 'P' && v[1] == 'X' && v[2] == 'E' && v[3] == 'C' &&
			    v[4] == 'l' && v[5] == 'i' && v[6] == 'e' && v[7] == 'n' && v[8] == 't')
				s->vc = 1;
			else if (l >= 10 && (void *)(v + 10) <= end && v[0] == 'H' && v[1] == 'T' && v[2] == 'T' &&
				 v[3] == 'P' && v[4] == 'C' && v[5] == 'l' && v[6] == 'i' && v[7] == 'e' && v[8] == 'n' &&
				 v[9] == 't')
				s->vc = 2;
		} else if (code == 77 && !s->uc) {
			/* "iPXE" as iPXE sends it, or an RFC 3004 list whose first
			 * entry is "iPXE" */
			s->uc = 2;
			if (l == 4 && (void *)(v + 4) <= end && v[0] == 'i' && v[1] == 'P' && v[2] == 'X' && v[3] == 'E')
				s->uc = 1;
			else if (l >= 5 && (void *)(v + 5) <= end && v[0] == 4 && v[1] == 'i' && v[2] == 'P' &&
				 v[3] == 'X' && v[4] == 'E')
				s->uc = 1;
		}
		off = next;
		/* The mask alone here: next is already at most OPT_BYTES, and
		 * this is the loop's critical path (load length, add, mask), where
		 * forget_bounds' OR cost a cycle per option; the verifier still
		 * converges (18.7k instructions on 6.18). */
		asm volatile("%0 &= 0x1ff" : "+r"(off));
	}
	__u32 vc = s->vc, uc = s->uc;
	if (vc != 1 && vc != 2)
		return C_DHCP;
	if (uc == 1)
		return C_IPXE;
	return vc == 1 ? C_PXE : C_HTTP;
}

/* dhcp_class reads a datagram to the DHCP or proxyDHCP port, whose payload
 * starts at offset pl of the packet: chaddr of a BOOTREQUEST with the magic
 * cookie, and its class from options 60 and 77 (first occurrence of each),
 * walking at most OPT_MAX options within the first OPT_BYTES bytes of the
 * options field and stopping at the end option or at the first option that
 * does not fit. */
static __always_inline __u32 dhcp_class(struct xdp_md *ctx, __u8 *pl, __u64 plo, void *end, struct mac_key *mk,
					int *has_mac)
{
	if ((void *)(pl + BOOTP_HDR + 4) > end)
		return C_DHCP;
	if (pl[0] != 1) /* BOOTREQUEST */
		return C_DHCP;
	if (pl[BOOTP_HDR] != 99 || pl[BOOTP_HDR + 1] != 130 || pl[BOOTP_HDR + 2] != 83 || pl[BOOTP_HDR + 3] != 99)
		return C_DHCP;
	__builtin_memcpy(mk->mac, pl + 28, 6);
	*has_mac = 1;

	return walk_options(ctx, plo + BOOTP_HDR + 4);
}

static __always_inline __u32 classify(struct xdp_md *ctx, void *data, void *end, const struct config *cfg, struct mac_key *mk,
				      int *has_mac)
{
	__u8 *p = data;
	if ((void *)(p + 14) > end)
		return C_OTHER;
	__u16 proto = *(__u16 *)(p + 12);
	p += 14;
#pragma unroll
	for (int i = 0; i < 2; i++) { /* 802.1Q and 802.1ad tags */
		if (proto != bpf_htons(0x8100) && proto != bpf_htons(0x88a8))
			break;
		if ((void *)(p + 4) > end)
			return C_OTHER;
		proto = *(__u16 *)(p + 2);
		p += 4;
	}
	if (proto != bpf_htons(0x0800))
		return C_OTHER;
	if ((void *)(p + 20) > end)
		return C_OTHER;
	if ((p[0] >> 4) != 4 || p[9] != 17) /* IPv4, UDP */
		return C_OTHER;
	__u32 ihl = (p[0] & 0xf) * 4;
	if (ihl < 20)
		return C_OTHER;
	if (*(__u16 *)(p + 6) & bpf_htons(0x3fff)) /* a fragment: no UDP header to read */
		return C_OTHER;
	p += ihl;
	if ((void *)(p + 8) > end)
		return C_OTHER;
	__u16 dport = bpf_ntohs(*(__u16 *)(p + 2));
	__u8 *pl = p + 8;
	if (dport == cfg->dhcp_port)
		return dhcp_class(ctx, pl, pl - (__u8 *)data, end, mk, has_mac);
	if (dport == cfg->proxy_port) {
		dhcp_class(ctx, pl, pl - (__u8 *)data, end, mk, has_mac);
		return C_PROXY;
	}
	if (dport == cfg->tftp_port)
		return C_TFTP;
	if (cfg->tftp_lo && dport >= cfg->tftp_lo && dport <= cfg->tftp_hi)
		return C_TFTP_DATA;
	return C_OTHER;
}

/* now_ns is the clock of the token buckets: the tick-granular monotonic
 * clock. jiffies * ns per jiffy when the loader knows the tick (the JIT
 * inlines bpf_jiffies64 into a load: ~18 ns less per packet than the
 * bpf_ktime_get_coarse_ns call, which advances at the same ticks), else
 * bpf_ktime_get_coarse_ns. */
static __always_inline __u64 now_ns(const struct config *cfg)
{
	if (cfg->clock_ns)
		return cfg->clock_ns;
	if (cfg->jiffy_ns)
		return bpf_jiffies64() * cfg->jiffy_ns;
	return bpf_ktime_get_coarse_ns();
}

/* take refills b for the time since its last refill and takes one token. */
static __always_inline int take(struct bucket *b, __u64 now, __u64 rate, __u64 burst)
{
	if (now > b->last) {
		__u64 el = now - b->last;
		if (el > MAX_ELAPSED)
			el = MAX_ELAPSED;
		__u64 t = b->tokens + el * rate;
		if (t > burst * NS)
			t = burst * NS;
		b->tokens = t;
		b->last = now;
	}
	if (b->tokens < NS)
		return 0;
	b->tokens -= NS;
	return 1;
}

/* policy_of reads mk's entry of the policy map: 0 if it has none. */
static __always_inline __u8 policy_of(const struct config *cfg, struct mac_key *mk)
{
	__u8 *pol = cfg->policy_n ? bpf_map_lookup_elem(&policy, mk) : 0;
	return pol ? POL_FOUND | *pol : 0;
}

static __always_inline __u32 judge(const struct config *cfg, __u32 cls, struct mac_key *mk, int has_mac)
{
	asm volatile("" : "+r"(cls)); /* keep the check: the verifier cannot see what walk_options returns */
	if (cls >= NCLASS)
		return V_PASS;
	if (cfg->action[cls])
		return V_DROP_CLASS;
	if (!has_mac)
		return V_PASS;
	/* The client's bucket carries its policy, valid while the config's
	 * generation is the one it was read under (read once: a config write
	 * in between must not label an older read as current). */
	__u32 gen = *(volatile __u32 *)&cfg->policy_gen;
	struct client *cl = cfg->rate ? bpf_map_lookup_elem(&buckets, mk) : 0;
	__u8 pol;
	if (cl && cl->gen == gen) {
		pol = cl->pol;
	} else {
		pol = policy_of(cfg, mk);
		if (cl) {
			cl->pol = pol;
			cl->gen = gen;
		}
	}
	if (pol) {
		if (pol == (POL_FOUND | P_DENY))
			return V_DROP_DENY;
	} else if (cfg->unknown == U_DROP) {
		return V_DROP_UNKNOWN;
	} else if (cfg->unknown == U_DISCOVERY && cls != C_PXE && cls != C_HTTP && cls != C_IPXE && cls != C_PROXY) {
		return V_DROP_UNKNOWN;
	}
	if (!cfg->rate)
		return V_PASS;
	__u64 now = now_ns(cfg);
	if (cl)
		return take(&cl->b, now, cfg->rate, cfg->burst) ? V_PASS : V_DROP_RATE;
	if (pol != (POL_FOUND | P_ALLOW) && cfg->admit_rate) {
		__u32 zero = 0;
		struct bucket *a = bpf_map_lookup_elem(&admission, &zero);
		if (a && !take(a, now, cfg->admit_rate, cfg->admit_burst))
			return V_DROP_ADMISSION;
	}
	struct client nc = {.b = {.tokens = cfg->burst ? (__u64)(cfg->burst - 1) * NS : 0, .last = now}, .gen = gen, .pol = pol};
	bpf_map_update_elem(&buckets, mk, &nc, BPF_ANY);
	return V_PASS;
}

SEC("xdp")
int xdp_pxe(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	const struct config *cfg = bpf_map_lookup_elem(&config_map, &zero);
	if (!cfg)
		return XDP_PASS;
	struct mac_key mk = {};
	int has_mac = 0;
	__u32 cls = classify(ctx, data, end, cfg, &mk, &has_mac);
	__u32 v = judge(cfg, cls, &mk, has_mac);
	__u32 key = cls * NVERDICT + v;
	struct counter *c = bpf_map_lookup_elem(&counters, &key);
	if (c) {
		c->packets++;
		c->bytes += end - data;
	}
	return v == V_PASS ? XDP_PASS : XDP_DROP;
}
