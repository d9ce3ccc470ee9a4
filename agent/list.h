/*
 * list.h - an intrusive doubly linked list (the Linux kernel's shape).
 *
 * A struct that can be on a list embeds a struct list_node; a list is a
 * struct list_node head linked to itself when empty. No allocation, O(1)
 * insert and remove, and a node knows whether it is on a list.
 */
#ifndef EMBER_AGENT_LIST_H
#define EMBER_AGENT_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
	struct list_node *next, *prev;
};

#define container_of(ptr, type, member)                                       \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void list_init(struct list_node *h)
{
	h->next = h->prev = h;
}

static inline bool list_empty(const struct list_node *h)
{
	return h->next == h;
}

/* A node that was list_init()ed or list_del()ed is on no list. */
static inline bool list_linked(const struct list_node *n)
{
	return n->next && n->next != n;
}

static inline void list_add_between(struct list_node *n, struct list_node *p,
				    struct list_node *q)
{
	n->prev = p;
	n->next = q;
	p->next = n;
	q->prev = n;
}

/* At the front (a stack) / at the back (a FIFO). */
static inline void list_push(struct list_node *h, struct list_node *n)
{
	list_add_between(n, h, h->next);
}

static inline void list_append(struct list_node *h, struct list_node *n)
{
	list_add_between(n, h->prev, h);
}

static inline void list_del(struct list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	list_init(n);
}

static inline struct list_node *list_first(const struct list_node *h)
{
	return list_empty(h) ? NULL : h->next;
}

static inline struct list_node *list_last(const struct list_node *h)
{
	return list_empty(h) ? NULL : h->prev;
}

#define list_for_each_safe(pos, tmp, head)                                    \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);      \
	     (pos) = (tmp), (tmp) = (pos)->next)

#endif
