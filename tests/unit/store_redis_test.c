/* placeholder, replaced below */
#include <criterion/criterion.h>
Test(store_redis, placeholder)
{
}
