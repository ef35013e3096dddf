-- Monthly recurring revenue of the current subscriptions.
select a.account_id, coalesce(sum(s.mrr), 0) as mrr
from {{ source('account') }} a
left join analytics.subscriptions s on s.account_id = a.account_id and s.ended_at is null
group by a.account_id
