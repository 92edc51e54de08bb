/* placeholder: being written */
typedef int pr_placeholder_tunnel;
