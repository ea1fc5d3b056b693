/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The few kernel and libbpf definitions xdp_pxe.c needs, vendored so the
 * build depends on no header path: UAPI values from linux/bpf.h, the map
 * definition macros of libbpf's bpf_helpers.h, and three helpers by their
 * stable numbers (enum bpf_func_id).
 */
#ifndef OSIM_BPF_MIN_H
#define OSIM_BPF_MIN_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

enum xdp_action { XDP_ABORTED = 0, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT };

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_LRU_HASH 9

#define BPF_ANY 0

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name
#define __always_inline inline __attribute__((always_inline))

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static __u64 (*bpf_ktime_get_coarse_ns)(void) = (void *)160;
static __u64 (*bpf_jiffies64)(void) = (void *)118;

#define bpf_htons(x) ((__u16)__builtin_bswap16(x)) /* little-endian targets only (bpfel) */
#define bpf_ntohs(x) bpf_htons(x)

#endif
