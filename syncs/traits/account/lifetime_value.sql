-- Everything the account ever paid.
select a.account_id, coalesce(sum(i.amount), 0) as lifetime_value
from {{ source('account') }} a
left join analytics.invoices i on i.account_id = a.account_id
group by a.account_id
