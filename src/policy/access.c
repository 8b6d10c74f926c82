/* Access decisions: who may read or update a policy, and which export entry lets
 * another policy import a secret. The attestation decisions are in decide.c. */
#include <string.h>

#include "policy/internal.h"

static bool id_listed(char *const *list, size_t n, const char *owner, const char *id)
{
	if (!id)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(list[i], "owner") && owner && !strcmp(owner, id))
			return true;
		if (!strcmp(list[i], id))
			return true;
	}
	return false;
}

bool pol_may_read(const struct pol_policy *p, const char *owner, const char *id)
{
	/* Whoever may update may also read what they would overwrite. */
	return id_listed(p->read, p->n_read, owner, id) ||
	       id_listed(p->update, p->n_update, owner, id);
}

bool pol_may_update(const struct pol_policy *p, const char *owner, const char *id)
{
	return id_listed(p->update, p->n_update, owner, id);
}

int pol_may_apply(const struct pol_policy *cur, const struct pol_policy *next,
		  const char *owner, const char *caller, const char **why)
{
	*why = NULL;
	if (!pol_may_update(cur, owner, caller))
		return -KILN_EDENIED;
	/* A co-updater may change anything but the owner's own update access: it
	 * cannot lock the owner out of the policy. The owner may. */
	if (!pol_may_update(next, owner, owner) && (!caller || strcmp(caller, owner))) {
		*why = "only the owner may remove the owner's update access";
		return -KILN_EDENIED;
	}
	return 0;
}

const struct pol_export *pol_export_find(const struct pol_secret *xs, const char *importer,
					 const char *importer_hash, const char *importer_owner)
{
	for (size_t i = 0; i < xs->n_exports; i++) {
		const struct pol_export *e = &xs->exports[i];

		if (strcmp(e->session, importer))
			continue;
		/* An entry bound to neither (stored by an older kiln) matches nothing:
		 * the name alone says nothing about who created the importer. */
		if (!e->owner && !e->policy_hash)
			continue;
		if (e->owner && (!importer_owner || strcmp(e->owner, importer_owner)))
			continue;
		if (e->policy_hash && (!importer_hash || strcmp(e->policy_hash, importer_hash)))
			continue;
		return e;
	}
	return NULL;
}
