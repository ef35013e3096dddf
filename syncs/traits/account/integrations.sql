-- Distinct users who connected an integration: a strong sign of adoption.
select a.account_id, count(distinct e.user_id) as integrations
from {{ source('account') }} a
left join analytics.product_events e on e.account_id = a.account_id and e.event = 'connected_integration'
group by a.account_id
